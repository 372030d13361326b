"""/presets: famous paintings (fast style transfer) and CycleGAN painters."""
import asyncio

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.handlers.common import ATTACHMENT, fetch_kept, restart_dialog, take_picture
from bot.jobs import Job
from bot.keyboards import Action, PresetPick, presets_menu
from bot.messenger import JobMessenger
from bot.pictures import Picture, PictureStore
from bot.presets import Painter, Painting, Presets
from bot.states import PresetDialog

router = Router(name="presets")


def menu_text() -> str:
    return _("🖼 Pick a painting to paint your photo like, or a painter whose manner to borrow:")


@router.message(Command("presets"))
async def presets_command(message: Message, state: FSMContext, presets: Presets) -> None:
    await restart_dialog(state, keep_picture=False)
    await message.answer(menu_text(), reply_markup=presets_menu(presets))


@router.callback_query(Action.filter(F.name == "presets"))
async def presets_button(callback: CallbackQuery, state: FSMContext, presets: Presets) -> None:
    await callback.answer()
    await restart_dialog(state, keep_picture=True)
    await callback.message.answer(menu_text(), reply_markup=presets_menu(presets))


@router.callback_query(PresetPick.filter())
async def pick_preset(callback: CallbackQuery, callback_data: PresetPick, state: FSMContext, presets: Presets,
                      pictures: PictureStore, messenger: JobMessenger) -> None:
    preset = find_preset(presets, callback_data)
    if preset is None:
        await callback.answer(_("This style is no longer available. Send /presets to see the current ones."))
        return
    await callback.answer(preset.caption)
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    if picture is not None:
        await run_preset(callback.message, callback.from_user.id, state, messenger, preset, picture)
        return
    await state.set_state(PresetDialog.waiting_picture)
    await state.update_data(preset=callback_data.model_dump())
    await callback.message.answer(_("Now send me the photo to paint: {style}").format(style=preset.caption))


@router.message(PresetDialog.waiting_picture, ATTACHMENT)
async def got_picture(message: Message, state: FSMContext, presets: Presets, pictures: PictureStore,
                      messenger: JobMessenger) -> None:
    preset = find_preset(presets, PresetPick(**(await state.get_value("preset"))))
    if preset is None:
        await state.clear()
        await message.answer(_("This style is no longer available. Send /presets to see the current ones."))
        return
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        await run_preset(message, message.from_user.id, state, messenger, preset, picture)


def find_preset(presets: Presets, pick: PresetPick) -> Painting | Painter | None:
    if pick.kind == "painting":
        return presets.painting(pick.key)
    if pick.kind == "painter":
        return presets.painter(pick.key)
    return None


async def run_preset(chat: Message, user_id: int, state: FSMContext, messenger: JobMessenger,
                     preset: Painting | Painter, picture: Picture) -> None:
    if isinstance(preset, Painting):
        style = await asyncio.to_thread(preset.path.read_bytes)
        job = Job(user_id=user_id, chat_id=chat.chat.id, op="stylize",
                  images={"content": picture.data, "style": style},
                  # style_key lets the worker reuse the painting's statistics from the last time.
                  options={"strength": 1.0, "preserve_colors": False, "style_key": f"preset-{preset.key}"})
    else:
        job = Job(user_id=user_id, chat_id=chat.chat.id, op="translate",
                  images={"image": picture.data}, options={"direction": preset.key})
    if await messenger.submit(chat, job, source=picture.ref):
        await state.clear()

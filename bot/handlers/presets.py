"""/presets: famous paintings (fast style transfer), a preview of them all, and CycleGAN painters."""
import asyncio

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import FAST_MODELS, Action, PresetModel, PresetPick, SheetPick, presets_menu, sheet_menu
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureRef, PictureStore
from bot.chat.states import PresetDialog
from bot.handlers.common import (ATTACHMENT, fast_model, fetch_kept, fetch_ref, find_result, mix_record,
                                 pick_fast_model, restart_dialog, take_picture)
from bot.jobs.job import Job, JobDone
from bot.presets import Painter, Painting, Presets
from bot.settings import Settings

router = Router(name="presets")


def menu_text() -> str:
    return _("🖼 Pick a painting to paint your photo like, or a painter whose manner to borrow:")


def gone_text() -> str:
    return _("This style is no longer available. Send /presets to see the current ones.")


@router.message(Command("presets"))
async def presets_command(message: Message, state: FSMContext, presets: Presets, settings: Settings) -> None:
    await restart_dialog(state, keep_picture=False)
    await message.answer(menu_text(), reply_markup=presets_menu(presets, await fast_model(state, settings)))


@router.callback_query(Action.filter(F.name == "presets"))
async def presets_button(callback: CallbackQuery, state: FSMContext, presets: Presets, settings: Settings) -> None:
    await callback.answer()
    await restart_dialog(state, keep_picture=True)
    await callback.message.answer(menu_text(), reply_markup=presets_menu(presets, await fast_model(state, settings)))


@router.callback_query(PresetModel.filter(F.model.in_(FAST_MODELS)))
async def choose_model(callback: CallbackQuery, callback_data: PresetModel, state: FSMContext,
                       presets: Presets, settings: Settings) -> None:
    before = await fast_model(state, settings)
    await pick_fast_model(state, callback_data.model)
    await callback.answer(_("Fast: a small network, the result in a second or two.") if callback_data.model == "lite"
                          else _("Detailed: a larger network with finer detail; it takes longer."))
    if not isinstance(callback.message, Message):   # too old to edit: the menu comes anew
        await callback.message.answer(menu_text(), reply_markup=presets_menu(presets, callback_data.model))
    elif callback_data.model != before:
        await callback.message.edit_reply_markup(reply_markup=presets_menu(presets, callback_data.model))


@router.callback_query(PresetPick.filter())
async def pick_preset(callback: CallbackQuery, callback_data: PresetPick, state: FSMContext, presets: Presets,
                      pictures: PictureStore, messenger: JobMessenger, settings: Settings) -> None:
    preset = find_preset(presets, callback_data)
    if preset is None:
        await callback.answer(gone_text())
        return
    await callback.answer(preset.caption)
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    if picture is not None:
        await run_preset(callback.message, callback.from_user.id, state, messenger, preset, picture,
                         await fast_model(state, settings))
        return
    await state.set_state(PresetDialog.waiting_picture)
    await state.update_data(preset=callback_data.model_dump())
    await ask_for_picture(callback.message, callback.from_user,
                          _("Now send me the photo to paint: {style}").format(style=preset.caption))


@router.message(PresetDialog.waiting_picture, ATTACHMENT)
async def got_picture(message: Message, state: FSMContext, presets: Presets, pictures: PictureStore,
                      messenger: JobMessenger, settings: Settings) -> None:
    preset = find_preset(presets, PresetPick(**(await state.get_value("preset"))))
    if preset is None:
        await state.clear()
        await message.answer(gone_text())
        return
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        await run_preset(message, message.from_user.id, state, messenger, preset, picture,
                         await fast_model(state, settings))


def find_preset(presets: Presets, pick: PresetPick) -> Painting | Painter | None:
    if pick.kind == "painting":
        return presets.painting(pick.key)
    if pick.kind == "painter":
        return presets.painter(pick.key)
    return None


def style_key(painting: Painting) -> str:
    """The name the worker caches a painting's style under, so it is never encoded twice."""
    return f"preset-{painting.key}"


async def run_preset(chat: Message, user_id: int, state: FSMContext, messenger: JobMessenger,
                     preset: Painting | Painter, picture: Picture, model: str) -> None:
    remember = None
    if isinstance(preset, Painting):
        style = await asyncio.to_thread(preset.path.read_bytes)
        job = Job(user_id=user_id, chat_id=chat.chat.id, op="stylize",
                  images={"content": picture.data, "style": style},
                  options={"model": model, "strength": 1.0, "preserve_colors": False, "style_key": style_key(preset)})
        remember = mix_record({"preset": preset.key})   # for "🎭 Mix with another painting"
    else:
        job = Job(user_id=user_id, chat_id=chat.chat.id, op="translate",
                  images={"image": picture.data}, options={"direction": preset.key})
    if await messenger.submit(chat, job, source=picture.ref, remember=remember):
        await state.clear()


# --- the preview sheet: the user's photo in every painting ---------------------

@router.callback_query(Action.filter(F.name == "sheet"))
async def sheet_button(callback: CallbackQuery, state: FSMContext, presets: Presets, pictures: PictureStore,
                       messenger: JobMessenger, settings: Settings) -> None:
    await callback.answer()
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    if picture is not None:
        await run_sheet(callback.message, callback.from_user.id, state, messenger, presets, picture,
                        await fast_model(state, settings))
        return
    await restart_dialog(state, keep_picture=False)
    await state.set_state(PresetDialog.waiting_sheet_picture)
    await ask_for_picture(callback.message, callback.from_user,
                          _("Send me a photo and I'll show it painted like each of the {count} paintings, "
                            "on one picture.").format(count=len(presets.paintings)))


@router.message(PresetDialog.waiting_sheet_picture, ATTACHMENT)
async def got_sheet_picture(message: Message, state: FSMContext, presets: Presets, pictures: PictureStore,
                            messenger: JobMessenger, settings: Settings) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        await run_sheet(message, message.from_user.id, state, messenger, presets, picture,
                        await fast_model(state, settings))


async def run_sheet(chat: Message, user_id: int, state: FSMContext, messenger: JobMessenger, presets: Presets,
                    picture: Picture, model: str) -> None:
    paintings = list(presets.paintings.values())
    if not paintings:
        await chat.answer(gone_text())
        return
    styles = await asyncio.to_thread(lambda: [p.path.read_bytes() for p in paintings])
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="preview_sheet",
              images={"content": picture.data, "styles": styles},
              options={"labels": [p.caption for p in paintings], "style_keys": [style_key(p) for p in paintings],
                       "model": model})

    def describe(_done: JobDone) -> str:
        return _("🖼 Your photo in every painting. Tap a number to get that one at full size.")

    if await messenger.submit(chat, job, source=picture.ref, describe_result=describe,
                              menu=lambda job_id: sheet_menu(job_id, len(paintings)),
                              remember={"sheet": [p.key for p in paintings]}):
        await state.clear()


@router.callback_query(SheetPick.filter())
async def pick_tile(callback: CallbackQuery, callback_data: SheetPick, state: FSMContext, presets: Presets,
                    pictures: PictureStore, messenger: JobMessenger, settings: Settings) -> None:
    record = await find_result(state, callback_data.job_id) or {}
    keys = record.get("sheet") or []
    if not 0 <= callback_data.index < len(keys) or record.get("source") is None:
        await callback.answer(_("I no longer have this picture. Please send it again."), show_alert=True)
        return
    painting = presets.painting(keys[callback_data.index])
    if painting is None:
        await callback.answer(gone_text(), show_alert=True)
        return
    await callback.answer(painting.caption)
    picture = await fetch_ref(callback.message, callback.from_user.id, PictureRef.from_data(record["source"]),
                              pictures)
    if picture is not None:
        await run_preset(callback.message, callback.from_user.id, state, messenger, painting, picture,
                         await fast_model(state, settings))

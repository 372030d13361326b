"""/season: summer to winter and back (CycleGAN)."""
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import SEASONS, Action, SeasonPick, seasons_menu
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureStore
from bot.chat.states import SeasonDialog
from bot.handlers.common import ATTACHMENT, fetch_kept, restart_dialog, take_picture
from bot.jobs.job import Job

router = Router(name="season")


def menu_text() -> str:
    return _("Which way shall the seasons turn? It works best on landscapes.")


@router.message(Command("season"))
async def season_command(message: Message, state: FSMContext) -> None:
    await restart_dialog(state, keep_picture=False)
    await message.answer(menu_text(), reply_markup=seasons_menu())


@router.callback_query(Action.filter(F.name == "season"))
async def season_button(callback: CallbackQuery, state: FSMContext) -> None:
    await callback.answer()
    await restart_dialog(state, keep_picture=True)
    await callback.message.answer(menu_text(), reply_markup=seasons_menu())


@router.callback_query(SeasonPick.filter(F.direction.in_(SEASONS)))
async def pick_direction(callback: CallbackQuery, callback_data: SeasonPick, state: FSMContext,
                         pictures: PictureStore, messenger: JobMessenger) -> None:
    await callback.answer()
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    if picture is not None:
        await run_season(callback.message, callback.from_user.id, state, messenger, callback_data.direction, picture)
        return
    await state.set_state(SeasonDialog.waiting_picture)
    await state.update_data(direction=callback_data.direction)
    if callback_data.direction == "summer2winter":
        text = _("☀️→❄️ Send me a summer photo and I'll cover it in winter.")
    else:
        text = _("❄️→☀️ Send me a winter photo and I'll bring the summer back.")
    await ask_for_picture(callback.message, callback.from_user, text)


@router.message(SeasonDialog.waiting_picture, ATTACHMENT)
async def got_picture(message: Message, state: FSMContext, pictures: PictureStore,
                      messenger: JobMessenger) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        direction = await state.get_value("direction")
        await run_season(message, message.from_user.id, state, messenger, direction, picture)


async def run_season(chat: Message, user_id: int, state: FSMContext, messenger: JobMessenger, direction: str,
                     picture: Picture) -> None:
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="translate", images={"image": picture.data},
              options={"direction": direction})
    if await messenger.submit(chat, job, source=picture.ref):
        await state.clear()

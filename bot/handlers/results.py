"""The buttons under a result: upscale it, try another style, start over."""
from aiogram import F, Router
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from bot.chat.keyboards import ResultAction, main_menu, picture_menu
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import PictureRef, PictureStore
from bot.handlers.common import KEPT_PICTURE, fast_model, fetch_ref, find_result
from bot.handlers.presets import run_sheet
from bot.handlers.start import greeting_text
from bot.handlers.upscale import offer_choices
from bot.presets import Presets
from bot.settings import Settings

router = Router(name="results")


def expired_text() -> str:
    return _("I no longer have this picture. Please send it again.")


@router.callback_query(ResultAction.filter(F.name == "upscale"))
async def upscale_result(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext,
                         settings: Settings, pictures: PictureStore, messenger: JobMessenger) -> None:
    result = await find_result(state, callback_data.job_id)
    if result is None:
        await callback.answer(expired_text(), show_alert=True)
        return
    await callback.answer()
    await state.clear()
    picture = await fetch_ref(callback.message, callback.from_user.id, PictureRef.from_data(result["result"]),
                              pictures)
    if picture is not None:   # the choices first, with a button that runs them
        await offer_choices(callback.message, state, messenger, picture.ref)


@router.callback_query(ResultAction.filter(F.name == "sheet"))
async def sheet_of_source(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext,
                          settings: Settings, presets: Presets, pictures: PictureStore,
                          messenger: JobMessenger) -> None:
    """The user's own picture (not the result) in every preset painting."""
    result = await find_result(state, callback_data.job_id)
    if result is None or result["source"] is None:
        await callback.answer(expired_text(), show_alert=True)
        return
    await callback.answer()
    await state.clear()
    picture = await fetch_ref(callback.message, callback.from_user.id, PictureRef.from_data(result["source"]),
                              pictures)
    if picture is not None:
        await run_sheet(callback.message, callback.from_user.id, state, messenger, presets, picture,
                        await fast_model(state, settings))


@router.callback_query(ResultAction.filter(F.name == "another"))
async def another_style(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext) -> None:
    result = await find_result(state, callback_data.job_id)
    if result is None or result["source"] is None:
        await callback.answer(expired_text(), show_alert=True)
        return
    await callback.answer()
    await state.clear()
    # The user's own picture, not the result: a new style starts from the original.
    await state.update_data({KEPT_PICTURE: result["source"]})
    await callback.message.answer(_("What shall I do with your picture this time?"), reply_markup=picture_menu())


@router.callback_query(ResultAction.filter(F.name == "restart"))
async def start_over(callback: CallbackQuery, state: FSMContext) -> None:
    await callback.answer()
    await state.clear()
    await callback.message.answer(greeting_text(callback.from_user.first_name), reply_markup=main_menu())


@router.callback_query(ResultAction.filter(F.name == "resend"))
async def send_again(callback: CallbackQuery, callback_data: ResultAction, messenger: JobMessenger) -> None:
    """ "Send it again" under a result whose delivery broke off."""
    await callback.answer()
    sent = await messenger.resend(callback.from_user.id, callback_data.job_id)
    if sent is None:
        await callback.message.answer(expired_text())
    elif sent:
        await delete_quietly(callback.message)
    else:
        await callback.message.answer(_("😔 Sorry, I still couldn't send it. Please try again in a minute."))


async def delete_quietly(message) -> None:
    """The note with the button has done its work once the picture is there."""
    try:
        await message.bot.delete_message(message.chat.id, message.message_id)
    except (TelegramAPIError, ClientDecodeError):
        pass

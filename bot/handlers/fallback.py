"""Everything no other router took: never leave the user with silence.

Included last, so it only sees what the feature routers did not handle.
"""
from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.states import WAITING_FOR_PICTURE, MixDialog, PresetDialog, SeasonDialog, StyleDialog, UpscaleDialog

router = Router(name="fallback")


def waiting_for(state_name: str | None) -> str:
    """What the dialog in this state is waiting for, in the user's words."""
    if state_name == StyleDialog.waiting_style.state:
        return _("I'm waiting for the style picture: a painting or any picture whose look you like.")
    if state_name == StyleDialog.waiting_content.state:
        return _("I'm waiting for the photo to paint in the style you sent.")
    if state_name == PresetDialog.waiting_picture.state:
        return _("I'm waiting for the photo to paint like the painting you picked.")
    if state_name == PresetDialog.waiting_sheet_picture.state:
        return _("I'm waiting for the photo to show in every painting.")
    if state_name == SeasonDialog.waiting_picture.state:
        return _("I'm waiting for the photo whose season to change.")
    if state_name == UpscaleDialog.waiting_picture.state:
        return _("I'm waiting for the picture to upscale.")
    if state_name == MixDialog.waiting_second.state:
        return _("I'm waiting for the second painting to mix in: tap one above or send a picture.")
    return _("I'm waiting for a picture.")


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message) -> None:
    await message.answer(_("I don't know that command. /help lists everything I can do."))


@router.message(StateFilter(*WAITING_FOR_PICTURE))
async def reminder(message: Message, state: FSMContext) -> None:
    await ask_for_picture(message, message.from_user, waiting_for(await state.get_state()) + "\n"
                          + _("Send it as a photo or an image file, or /cancel to stop."))


@router.message()
async def no_dialog(message: Message) -> None:
    await message.answer(_("I work with pictures: send me a photo and I'll offer what I can do with it, "
                           "or see /help."))


@router.callback_query()
async def stale_button(callback: CallbackQuery) -> None:
    await callback.answer(_("This button has expired. Send /start to begin again."), show_alert=True)

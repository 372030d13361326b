"""A picture that came with no operation chosen: keep it and offer what to do."""
from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.handlers.common import ATTACHMENT, KEPT_PICTURE, take_picture
from bot.keyboards import picture_menu
from bot.messenger import JobMessenger
from bot.pictures import PictureStore

router = Router(name="loose_picture")


@router.message(StateFilter(None), ATTACHMENT)
async def keep_picture(message: Message, state: FSMContext, pictures: PictureStore,
                       messenger: JobMessenger) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is None:
        return
    await state.set_data({KEPT_PICTURE: picture.ref.as_data()})
    await message.answer(_("Nice picture! What shall I do with it?"), reply_markup=picture_menu())

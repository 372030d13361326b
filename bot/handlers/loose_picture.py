"""A picture that came with no operation chosen: keep it and offer what to do.

An album gets one menu, for its first picture (bot/chat/albums.py says why),
with a button that upscales the whole album: its other parts are kept for it."""
from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.chat.albums import album_part_data, keep_album_part
from bot.chat.keyboards import picture_menu
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import PictureStore
from bot.handlers.common import ATTACHMENT, KEPT_PICTURE, take_picture

router = Router(name="loose_picture")


@router.message(StateFilter(None), ATTACHMENT)
async def keep_picture(message: Message, state: FSMContext, pictures: PictureStore,
                       messenger: JobMessenger, album_part: int = 0) -> None:
    if album_part:
        # The album's first picture has its menu already; this one waits for "upscale the whole album".
        await keep_album_part(state, message.media_group_id, album_part_data(message, pictures.download_limit),
                              first=False)
        return
    picture = await take_picture(message, pictures, messenger)
    if picture is None:
        return
    await state.set_data({KEPT_PICTURE: picture.ref.as_data()})
    if message.media_group_id:
        await keep_album_part(state, message.media_group_id, picture.ref.as_data(), first=True)
    text = _("Nice picture! What shall I do with it?")
    if message.media_group_id:
        text += "\n" + _("You sent an album: I can upscale all of it at once; everything else works on its "
                         "first picture.")
    await message.answer(text, reply_markup=picture_menu(album=message.media_group_id))

"""An album to upscale, as one batch: sent to /upscale, or "upscale the whole album" under an album's menu.

The album's parts are gathered first (bot/chat/albums.py), then bot/chat/batch.py
runs them one job after another and sends the results back as one album.
"""
from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.albums import AlbumGatherer, album_items, album_part_data, kept_album
from bot.chat.batch import ALBUM_MAX, Batch
from bot.chat.keyboards import AlbumUpscale
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureStore
from bot.chat.states import UpscaleDialog
from bot.chat.status import please_wait_text
from bot.chat.upscale_options import UpscaleChoice, upscale_choice
from bot.handlers.common import ATTACHMENT
from bot.chat.upscale_plan import describe_upscale, input_side, plan_upscale
from bot.settings import Settings

router = Router(name="upscale_album")

# The albums arriving now, in this bot process (each is complete a moment after its last part).
gatherer = AlbumGatherer()


@router.message(UpscaleDialog.waiting_picture, ATTACHMENT, F.media_group_id)
async def album_to_upscale(message: Message, state: FSMContext, settings: Settings, pictures: PictureStore,
                           messenger: JobMessenger, album_part: int = 0) -> None:
    user_id = message.from_user.id
    if messenger.is_busy(user_id):
        if album_part == 0:
            await message.answer(please_wait_text())
        return
    choice = await upscale_choice(state)
    locale = messenger.i18n.current_locale

    async def whole(parts: list[dict]) -> None:
        await state.clear()
        await start_batch(message, user_id, album_items(parts), choice, settings, messenger, locale)

    gatherer.add(message.chat.id, message.media_group_id, album_part_data(message, pictures.download_limit), whole)


@router.callback_query(AlbumUpscale.filter())
async def upscale_whole_album(callback: CallbackQuery, callback_data: AlbumUpscale, state: FSMContext,
                              settings: Settings, messenger: JobMessenger) -> None:
    """Under the menu of an album sent with no dialog: every picture of it, as one batch."""
    parts = await kept_album(state, callback_data.album)
    if not parts:
        await callback.answer(_("I no longer have this album. Please send it again."), show_alert=True)
        return
    if messenger.is_busy(callback.from_user.id):
        await callback.answer(please_wait_text(), show_alert=True)
        return
    await callback.answer()
    await state.clear()
    await start_batch(callback.message, callback.from_user.id, album_items(parts), await upscale_choice(state),
                      settings, messenger, messenger.i18n.current_locale)


async def start_batch(chat: Message, user_id: int, items: list, choice: UpscaleChoice, settings: Settings,
                      messenger: JobMessenger, locale: str) -> None:
    def make_job(picture: Picture):
        plan = plan_upscale(chat.chat.id, user_id, picture, choice, settings, messenger)
        return plan.job if plan.job is not None else plan.note

    def describe(picture: Picture, done) -> str:
        return describe_upscale(picture, done, choice.scale, input_side(picture, choice.scale, settings, messenger)[1],
                                choice.model_on(messenger.device()))

    batch = Batch(messenger, chat, user_id, items[:ALBUM_MAX], make_job=make_job, describe=describe, locale=locale)
    await batch.start()

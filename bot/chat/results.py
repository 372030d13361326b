"""Sending a finished job's result: a photo, or a document where a photo will not do; never lost, never twice.

A result that cannot be delivered is never lost and never sent twice unasked.
bot/chat/retry.py retries what surely did not reach Telegram; when the
connection broke after the upload went out, Telegram may or may not have
posted it, and the Bot API cannot tell us which. Then a note below says so,
with a "send it again" button: the user, who sees the chat, decides. The same
button comes with the apology (in the status message) when every retry
failed. A refused sendPhoto (PHOTO_INVALID_DIMENSIONS, IMAGE_PROCESS_FAILED,
413) is sent once as a document. Results go to the forum topic the job came
from.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ChatAction
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest, TelegramNetworkError
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.chat.i18n import in_locale, profile_for
from bot.chat.keyboards import resend_menu
from bot.chat.pictures import Picture, PictureRef, PictureStore
from bot.chat.retry import is_entity_too_large, never_reached_telegram
from bot.chat.status import SEND_ERRORS, Delivery, StatusMessages
from bot.jobs.job import JobDone

log = logging.getLogger(__name__)

# Telegram's limits for sendPhoto; anything beyond goes as a document.
PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_SIDES_SUM = 10_000
PHOTO_MAX_RATIO = 20
DOCUMENT_MAX_BYTES = 50 * 1024 * 1024
RESULTS_KEPT = 5   # per user, for the buttons under the latest results
UNSENT_KEPT = 20   # results waiting for "send it again", all users together (they hold the bytes)
# Uploads get the default minute plus time for their bytes at a slow 200 KB/s.
UPLOAD_BASE_TIMEOUT_S = 60
UPLOAD_BYTES_PER_S = 200 * 1024
# sendPhoto refusals the pre-checks can miss; a document is sent instead.
PHOTO_REFUSALS = ("PHOTO_", "IMAGE_PROCESS_FAILED", "wrong type of the web page content")


def upload_timeout(size_bytes: int) -> int:
    return UPLOAD_BASE_TIMEOUT_S + size_bytes // UPLOAD_BYTES_PER_S


@dataclass
class Unsent:
    """A finished result that did not (surely) reach the user: kept for "send it again"."""
    delivery: Delivery
    event: JobDone
    caption: str
    markup: InlineKeyboardMarkup


class ResultSender:
    def __init__(self, bot: Bot, i18n: I18n, storage: BaseStorage, pictures: PictureStore, status: StatusMessages):
        self.bot = bot
        self.i18n = i18n
        self.storage = storage
        self.pictures = pictures
        self.status = status
        self._unsent: dict[str, Unsent] = {}

    async def send(self, unsent: Unsent) -> Message:
        delivery, event = unsent.delivery, unsent.event
        job = delivery.job
        data, extension = event.data, job.output.replace("jpeg", "jpg")
        if not delivery.as_document and fits_photo_limits(len(data), event.width, event.height):
            await self.status.chat_action(delivery, ChatAction.UPLOAD_PHOTO, paced=False)
            photo = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
            try:
                return await self.bot.send_photo(job.chat_id, photo, caption=unsent.caption,
                                                 reply_markup=unsent.markup, message_thread_id=delivery.thread_id,
                                                 request_timeout=upload_timeout(len(data)))
            except (TelegramBadRequest, TelegramNetworkError, ClientDecodeError) as e:
                if not (is_entity_too_large(e) or (isinstance(e, TelegramBadRequest)
                                                   and any(r in e.message for r in PHOTO_REFUSALS))):
                    raise
                log.info("sendPhoto refused for job %s (%s); sending it as a document", job.id, e)
        if len(data) > DOCUMENT_MAX_BYTES:
            data, extension = await asyncio.to_thread(reencode_as_jpeg, data), "jpg"
        await self.status.chat_action(delivery, ChatAction.UPLOAD_DOCUMENT, paced=False)
        document = BufferedInputFile(data, filename=f"stylebot-{job.op}.{extension}")
        return await self.bot.send_document(job.chat_id, document, caption=unsent.caption, reply_markup=unsent.markup,
                                            disable_content_type_detection=True,
                                            message_thread_id=delivery.thread_id,
                                            request_timeout=upload_timeout(len(data)))

    async def remember(self, delivery: Delivery, event: JobDone, sent: Message) -> None:
        """Keep what the buttons under the result need: the result itself and its source."""
        job = delivery.job
        attachment = sent.document or (sent.photo[-1] if sent.photo else None)
        if attachment is None:
            return
        result_ref = PictureRef(attachment.file_id, attachment.file_unique_id)
        self.pictures.put(job.user_id, result_ref.unique_id, Picture(result_ref, event.data, event.width,
                                                                     event.height))
        profile = profile_for(self.storage, self.bot.id, job.chat_id, job.user_id)
        results = dict((await profile.get_value("results")) or {})
        results[job.id] = {"result": result_ref.as_data(),
                           "source": delivery.source.as_data() if delivery.source else None,
                           **(delivery.remember or {})}
        while len(results) > RESULTS_KEPT:
            results.pop(next(iter(results)))
        await profile.update_data(results=results)

    async def keep_unsent(self, unsent: Unsent, error: Exception) -> None:
        """The result did not surely arrive: say so, with "send it again", and keep it for that button.

        A lost answer gets a new message, below where the picture is if it did arrive; a
        sure failure turns the status message into the apology."""
        delivery = unsent.delivery
        lost_answer = isinstance(error, (TelegramNetworkError, ClientDecodeError)) and not (
            never_reached_telegram(error) or is_entity_too_large(error))
        log.warning("the result of job %s did not %s: %s", delivery.job.id,
                    "surely arrive" if lost_answer else "go out", error)
        self._unsent[delivery.job.id] = unsent
        while len(self._unsent) > UNSENT_KEPT:
            self._unsent.pop(next(iter(self._unsent)))
        if lost_answer:
            text = _("📬 Your picture is ready, but the connection to Telegram broke while I was sending it, "
                     "so it may or may not have arrived. If it isn't just above, tap the button and I'll send "
                     "it again.")
        else:
            text = _("😔 Sorry, your picture is ready but I couldn't send it. Tap the button to try again.")
        markup = resend_menu(delivery.job.id)
        chat_id, message_id = delivery.job.chat_id, delivery.status_message_id
        shown = None
        if lost_answer:
            # A new message, below where the picture would be: "just above" then holds.
            await self.status.delete_status(delivery)
        elif message_id is not None:
            shown = await self.status.safely(self.bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup))
        if shown is None:
            await self.status.safely(self.bot.send_message(chat_id, text, reply_markup=markup,
                                                           message_thread_id=delivery.thread_id))

    async def resend(self, user_id: int, job_id: str) -> bool | None:
        """The "send it again" button: True when sent, False when it failed again, None when long gone."""
        unsent = self._unsent.get(job_id)
        if unsent is None or unsent.delivery.job.user_id != user_id:
            return None
        delivery = unsent.delivery
        with in_locale(self.i18n, delivery.locale):
            try:
                sent = await self.send(unsent)
            except SEND_ERRORS as e:
                log.warning("sending the result of job %s again failed: %s", job_id, e)
                return False
        self._unsent.pop(job_id, None)
        await self.remember(delivery, unsent.event, sent)
        return True


def fits_photo_limits(size_bytes: int, width: int, height: int) -> bool:
    return (size_bytes <= PHOTO_MAX_BYTES and width + height <= PHOTO_MAX_SIDES_SUM
            and max(width, height) <= PHOTO_MAX_RATIO * min(width, height))


def reencode_as_jpeg(data: bytes) -> bytes:
    """A PNG too big for Telegram's document limit; JPEG at high quality fits."""
    from nets.imageio import encode_jpeg, load_image
    return encode_jpeg(load_image(data, max_pixels=200_000_000), quality=95)

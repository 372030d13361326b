"""Pictures from users: what counts as one, downloading, checking, keeping.

FSM data holds only a `PictureRef` (Telegram's file_id); the checked bytes
wait in `PictureStore`, a small in-memory cache, and are fetched again from
Telegram if they were evicted. Nothing touches the disk.

Decoding runs in a thread pool so the event loop keeps answering other users.
Only `nets.imageio` (Pillow) is used here: the bot process never imports torch.
"""
from __future__ import annotations

import asyncio
import io
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from nets.errors import ImageError
from nets.imageio import load_image, probe

# getFile refuses anything larger: "Bad Request: file is too big".
DOWNLOAD_LIMIT_BYTES = 20 * 1024 * 1024
# A Local Bot API server (TELEGRAM_API_LOCAL=1) hands out files up to 2 GB, by a path on its disk.
LOCAL_DOWNLOAD_LIMIT_BYTES = 2000 * 1024 * 1024
IMAGE_MIME_TYPES = {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp",
                    "image/bmp", "image/x-bmp", "image/x-ms-bmp", "image/tiff"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class PictureRef:
    """How to find a picture again: kept in FSM data, so plain strings only."""

    file_id: str
    unique_id: str

    def as_data(self) -> dict[str, str]:
        return {"file_id": self.file_id, "unique_id": self.unique_id}

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> PictureRef | None:
        return cls(data["file_id"], data["unique_id"]) if data else None


@dataclass(frozen=True)
class Picture:
    ref: PictureRef
    data: bytes
    width: int   # as displayed, after the EXIF rotation
    height: int


class PictureRejected(Exception):
    """The message holds something we cannot use; `text` tells the user why."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


def picture_ref_in(message: Message, limit: int = DOWNLOAD_LIMIT_BYTES) -> PictureRef | None:
    """The picture attached to a message; None for a message with no attachment.

    Raises PictureRejected for attachments that are not a still picture, or over `limit` bytes.
    """
    def _check_size(file_size: int | None) -> None:
        if file_size and file_size > limit:
            raise PictureRejected(too_big_text(limit))

    if message.photo:
        largest = message.photo[-1]
        _check_size(largest.file_size)
        return PictureRef(largest.file_id, largest.file_unique_id)
    if message.sticker:
        sticker = message.sticker
        if sticker.is_animated:
            raise PictureRejected(_("Animated stickers can't be used, only still pictures. "
                                    "Send a photo or a regular sticker."))
        if sticker.is_video:
            raise PictureRejected(_("Video stickers can't be used, only still pictures. "
                                    "Send a photo or a regular sticker."))
        _check_size(sticker.file_size)
        return PictureRef(sticker.file_id, sticker.file_unique_id)
    if message.document:
        document = message.document
        if not _is_image_document(document.mime_type, document.file_name):
            raise PictureRejected(_("This file isn't a picture. Send a photo, or an image file: "
                                    "JPEG, PNG, WebP, BMP or TIFF."))
        _check_size(document.file_size)
        return PictureRef(document.file_id, document.file_unique_id)
    if message.animation or message.video or message.video_note:
        raise PictureRejected(_("Videos and GIFs can't be used, only still pictures. Send a photo."))
    return None


def _is_image_document(mime_type: str | None, file_name: str | None) -> bool:
    mime_type = (mime_type or "").lower()
    if mime_type in IMAGE_MIME_TYPES:
        return True
    # Some clients send pictures as application/octet-stream; the name then tells.
    generic = mime_type in ("", "application/octet-stream", "binary/octet-stream")
    return generic and (file_name or "").lower().endswith(IMAGE_EXTENSIONS)


def too_big_text(limit: int = DOWNLOAD_LIMIT_BYTES) -> str:
    if limit > DOWNLOAD_LIMIT_BYTES:
        return _("This file is over 2 GB, the most I can take. Please send a smaller one.")
    return _("This file is over 20 MB, the most a bot can download from Telegram. "
             "Send it as a photo, or a smaller file.")


def image_error_text(error: ImageError) -> str:
    if error.code == "bomb":
        return _("This picture claims an enormous size and looks unsafe to open, so I refused it. "
                 "Please send a regular photo.")
    if error.code == "too_large":
        return _("This picture has too many pixels for me. Please send one under 50 megapixels.")
    if error.code in ("corrupt", "empty"):
        return _("This picture seems damaged or incomplete, so I can't open it. Please try another file.")
    if error.code == "unsupported":
        return _("I can't read this picture format. Please send a JPEG, PNG or WebP.")
    return _("This file isn't a picture. Send a photo, or an image file: JPEG, PNG, WebP, BMP or TIFF.")


class PictureStore:
    """Checked picture bytes per user, in memory, least recently used out first."""

    def __init__(self, *, budget_bytes: int = 256 * 1024 * 1024, ttl_s: float = 3600.0,
                 max_side_hint: int | None = None, threads: int = 2, download_limit: int | None = None):
        self.budget_bytes = budget_bytes
        self.download_limit = download_limit or DOWNLOAD_LIMIT_BYTES
        self.ttl_s = ttl_s
        self.max_side_hint = max_side_hint
        self._pictures: OrderedDict[tuple[int, str], tuple[float, Picture]] = OrderedDict()
        self._size = 0
        self._decoder = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decode")

    async def fetch(self, bot: Bot, user_id: int, ref: PictureRef) -> Picture:
        """The checked picture, downloading it if needed; raises PictureRejected."""
        if (picture := self.get(user_id, ref.unique_id)) is not None:
            return picture
        data = await self._download(bot, ref.file_id)
        picture = await self.check(ref, data)
        self.put(user_id, ref.unique_id, picture)
        return picture

    async def check(self, ref: PictureRef, data: bytes) -> Picture:
        loop = asyncio.get_running_loop()
        try:
            info = await loop.run_in_executor(self._decoder, self._decode, data)
        except ImageError as e:
            raise PictureRejected(image_error_text(e)) from e
        return Picture(ref, data, info.width, info.height)

    def _decode(self, data: bytes):
        info = probe(data)
        load_image(data, max_side=self.max_side_hint)  # decodes everything: damage shows up now
        return info

    async def _download(self, bot: Bot, file_id: str) -> bytes:
        try:
            file = await bot.get_file(file_id)
        except TelegramBadRequest as e:
            if "too big" in e.message.lower():
                raise PictureRejected(too_big_text(self.download_limit)) from e
            raise
        if file.file_size and file.file_size > self.download_limit:
            raise PictureRejected(too_big_text(self.download_limit))
        # With a Local Bot API server file_path is a path on its disk, which aiogram reads (is_local).
        buffer = io.BytesIO()
        await bot.download_file(file.file_path, destination=buffer)
        return buffer.getvalue()

    def get(self, user_id: int, name: str) -> Picture | None:
        key = (user_id, name)
        entry = self._pictures.get(key)
        if entry is None:
            return None
        stored_at, picture = entry
        if time.monotonic() - stored_at > self.ttl_s:
            self._remove(key)
            return None
        self._pictures.move_to_end(key)
        return picture

    def put(self, user_id: int, name: str, picture: Picture) -> None:
        key = (user_id, name)
        self._remove(key)
        self._pictures[key] = (time.monotonic(), picture)
        self._size += len(picture.data)
        while self._size > self.budget_bytes and len(self._pictures) > 1:
            self._remove(next(iter(self._pictures)))

    def forget_user(self, user_id: int) -> None:
        for key in [k for k in self._pictures if k[0] == user_id]:
            self._remove(key)

    def _remove(self, key: tuple[int, str]) -> None:
        entry = self._pictures.pop(key, None)
        if entry is not None:
            self._size -= len(entry[1].data)

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

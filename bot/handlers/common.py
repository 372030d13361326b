"""What several dialogs do the same way: take a picture from a message, keep one aside."""
from __future__ import annotations

from aiogram import F
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.chat.i18n import profile_of
from bot.chat.keyboards import FAST_MODELS
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureRef, PictureRejected, PictureStore, picture_ref_in
from bot.chat.status import please_wait_text
from bot.settings import Settings

# Anything that could be meant as a picture; picture_ref_in tells which ones are.
ATTACHMENT = F.photo | F.document | F.sticker | F.animation | F.video | F.video_note

KEPT_PICTURE = "picture"   # FSM data key: a picture waiting for the user to pick an operation
MIX = "mix"                # result records: {"first": painting, "second": painting} (bot/handlers/mix.py)
FAST_MODEL = "fast_model"  # profile key: the fast network the user picked last (lite or adain)


async def take_picture(message: Message, pictures: PictureStore, messenger: JobMessenger) -> Picture | None:
    """The checked picture in the message, or None after telling the user what is wrong."""
    if messenger.is_busy(message.from_user.id):
        # Checked first: a flood of pictures should not download them all just to refuse them.
        await message.answer(please_wait_text())
        return None
    try:
        ref = picture_ref_in(message, pictures.download_limit)
        if ref is None:
            return None
        return await pictures.fetch(message.bot, message.from_user.id, ref)
    except PictureRejected as e:
        await message.answer(e.text)
        return None


async def kept_picture(state: FSMContext) -> PictureRef | None:
    return PictureRef.from_data(await state.get_value(KEPT_PICTURE))


async def fetch_kept(chat: Message, user_id: int, state: FSMContext, pictures: PictureStore) -> Picture | None:
    """The picture kept aside for this dialog, fetched again if it left the cache.

    `chat` is any message in the user's chat (in a button handler, the bot's own).
    """
    ref = await kept_picture(state)
    if ref is None:
        return None
    return await fetch_ref(chat, user_id, ref, pictures)


async def fetch_ref(chat: Message, user_id: int, ref: PictureRef, pictures: PictureStore) -> Picture | None:
    try:
        return await pictures.fetch(chat.bot, user_id, ref)
    except PictureRejected as e:
        await chat.answer(e.text)
        return None


async def restart_dialog(state: FSMContext, *, keep_picture: bool) -> PictureRef | None:
    """Leave whatever dialog was going on; optionally carry the kept picture over."""
    picture = await kept_picture(state) if keep_picture else None
    await state.clear()
    if picture is not None:
        await state.update_data({KEPT_PICTURE: picture.as_data()})
    return picture


async def keep_aside(state: FSMContext, picture: PictureRef) -> None:
    """End the dialog step but keep the picture (and what else the data holds) for the buttons shown."""
    await state.set_state(None)
    await state.update_data({KEPT_PICTURE: picture.as_data()})


async def fast_model(state: FSMContext, settings: Settings) -> str:
    """The fast network for this user: the one they picked last, else the bot's default.

    Kept in the profile, beside the language: a preference, not a dialog's step."""
    picked = await profile_of(state).get_value(FAST_MODEL)
    return picked if picked in FAST_MODELS else settings.default_fast_style


async def pick_fast_model(state: FSMContext, model: str) -> None:
    await profile_of(state).update_data({FAST_MODEL: model})


async def find_result(state: FSMContext, job_id: str) -> dict | None:
    """What the messenger kept of a finished job for the buttons under it (result, source, ...)."""
    results = await profile_of(state).get_value("results") or {}
    return results.get(job_id)


def mix_record(first: dict, second: dict | None = None) -> dict:
    """What a painted result keeps for "🎭 Mix with another painting" (bot/handlers/mix.py): its
    painting, {"preset": key} or {"picture": PictureRef data}, and after a sheet of mixes the second."""
    return {MIX: {"first": first, **({"second": second} if second else {})}}

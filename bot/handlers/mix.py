"""🎭 Mix two paintings: under a painted result, a second painting, then how much of it.

The ⚡ Fast network's style vectors (and AdaIN's statistics) interpolate, so
two paintings blend smoothly. After a preset or own-style result the user
taps "Mix with another painting", picks a second painting (a preset's button,
or a picture of their own), gets one sheet with the photo mixed at 25, 50 and
75 % of the second, and taps a share to get that mix at full size.

A painting in the dialog's data and the results' records is {"preset": key}
or {"picture": PictureRef data} (bot/handlers/common.py: mix_record).
"""
from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import MIX_SHARES, MixPick, MixShare, ResultAction, mix_second_menu, mix_shares_menu
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import PictureRef, PictureStore
from bot.chat.states import MixDialog
from bot.handlers.common import MIX, ATTACHMENT, fast_model, fetch_ref, find_result, mix_record, take_picture
from bot.handlers.presets import gone_text, style_key
from bot.jobs.job import Job, JobDone
from bot.presets import Presets
from bot.settings import Settings

router = Router(name="mix")

def expired_text() -> str:
    return _("I no longer have this picture. Please send it again.")


@router.callback_query(ResultAction.filter(F.name == "mix"))
async def mix_button(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext,
                     presets: Presets) -> None:
    record = await find_result(state, callback_data.job_id)
    if record is None or not record.get(MIX) or record.get("source") is None:
        await callback.answer(expired_text(), show_alert=True)
        return
    await callback.answer()
    await state.clear()
    await state.set_state(MixDialog.waiting_second)
    await state.update_data({MIX: {"first": record[MIX]["first"], "source": record["source"]}})
    first = record[MIX]["first"]
    menu = mix_second_menu(presets, leave_out=first.get("preset"))
    if menu.inline_keyboard:
        await callback.message.answer(_("🎭 Which painting shall I mix in? Tap one of these, or send me a "
                                        "picture of your own."), reply_markup=menu)
    else:
        await ask_for_picture(callback.message, callback.from_user,
                              _("🎭 Send me the second painting: any picture whose look you like. "
                                "I'll mix it with the first one."))


@router.callback_query(MixDialog.waiting_second, MixPick.filter())
async def picked_preset(callback: CallbackQuery, callback_data: MixPick, state: FSMContext, presets: Presets,
                        pictures: PictureStore, messenger: JobMessenger, settings: Settings) -> None:
    painting = presets.painting(callback_data.key)
    if painting is None:
        await callback.answer(gone_text())
        return
    await callback.answer(painting.caption)
    await mix_sheet(callback.message, callback.from_user.id, state, presets, pictures, messenger, settings,
                    second={"preset": painting.key})


@router.message(MixDialog.waiting_second, ATTACHMENT)
async def got_picture(message: Message, state: FSMContext, presets: Presets, pictures: PictureStore,
                      messenger: JobMessenger, settings: Settings) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        await mix_sheet(message, message.from_user.id, state, presets, pictures, messenger, settings,
                        second={"picture": picture.ref.as_data()})


async def painting_bytes(chat: Message, user_id: int, painting: dict, presets: Presets,
                         pictures: PictureStore) -> tuple[bytes, str | None] | None:
    """A painting's picture and the key its style is cached under; None (the user told) when it is gone."""
    if "preset" in painting:
        preset = presets.painting(painting["preset"])
        if preset is None:
            await chat.answer(gone_text())
            return None
        return await asyncio.to_thread(preset.path.read_bytes), style_key(preset)
    picture = await fetch_ref(chat, user_id, PictureRef.from_data(painting["picture"]), pictures)
    return (picture.data, None) if picture is not None else None


async def mix_sheet(chat: Message, user_id: int, state: FSMContext, presets: Presets, pictures: PictureStore,
                    messenger: JobMessenger, settings: Settings, *, second: dict) -> None:
    """The photo mixed at every share, on one sheet, with a button per share."""
    mix = await state.get_value(MIX) or {}
    source_ref = PictureRef.from_data(mix.get("source"))
    if source_ref is None:
        await state.clear()
        await chat.answer(expired_text())
        return
    source = await fetch_ref(chat, user_id, source_ref, pictures)
    first = await painting_bytes(chat, user_id, mix["first"], presets, pictures)
    other = await painting_bytes(chat, user_id, second, presets, pictures)
    if source is None or first is None or other is None:
        return
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="preview_sheet",
              images={"content": source.data, "styles": [first[0]], "mix_with": other[0]},
              options={"labels": [f"{p}%" for p in MIX_SHARES],
                       "mixes": [p / 100 for p in MIX_SHARES], "style_keys": [first[1]], "mix_key": other[1],
                       "model": await fast_model(state, settings)})

    def describe(_done: JobDone) -> str:
        return _("🎭 Your photo in the two paintings mixed: each number is how much of the second painting "
                 "went in. Tap one to get that mix at full size.")

    if await messenger.submit(chat, job, source=source.ref, describe_result=describe, menu=mix_shares_menu,
                              remember=mix_record(mix["first"], second)):
        await state.clear()


@router.callback_query(MixShare.filter())
async def share_button(callback: CallbackQuery, callback_data: MixShare, state: FSMContext, presets: Presets,
                       pictures: PictureStore, messenger: JobMessenger, settings: Settings) -> None:
    record = await find_result(state, callback_data.job_id) or {}
    mix = record.get(MIX) or {}
    if callback_data.percent not in MIX_SHARES or "second" not in mix or record.get("source") is None:
        await callback.answer(expired_text(), show_alert=True)
        return
    await callback.answer(f"{callback_data.percent}%")
    chat, user_id = callback.message, callback.from_user.id
    source = await fetch_ref(chat, user_id, PictureRef.from_data(record["source"]), pictures)
    first = await painting_bytes(chat, user_id, mix["first"], presets, pictures)
    other = await painting_bytes(chat, user_id, mix["second"], presets, pictures)
    if source is None or first is None or other is None:
        return
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="stylize",
              images={"content": source.data, "style": first[0], "mix_with": other[0]},
              options={"model": await fast_model(state, settings), "strength": 1.0, "preserve_colors": False,
                       "style_key": first[1], "mix": callback_data.percent / 100, "mix_key": other[1]})

    def describe(_done: JobDone) -> str:
        return _("🎭 The first painting {rest}%, the second {percent}%.").format(
            percent=callback_data.percent, rest=100 - callback_data.percent)

    # Mixing again starts from the same first painting.
    await messenger.submit(chat, job, source=source.ref, describe_result=describe,
                           remember=mix_record(mix["first"]))

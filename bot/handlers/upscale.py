"""/upscale: the model, the scale and the denoise a user chose; the compare sheet; the before/after crop.

The result is a file, so Telegram keeps every pixel. The input is shrunk
first where the result would pass what we can send (a PNG over Telegram's 50
MB document limit) or the workers' MAX_SIDE; the caption then says what the
factor really was and why. The choices are remembered per user
(bot/chat/upscale_options.py). Albums are bot/handlers/upscale_album.py's.
"""
from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import (Action, ComparePick, ResultAction, UpscaleGo, UpscaleOption, compare_menu,
                                large_picture_menu, upscale_menu, upscale_model_name, upscale_result_menu)
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureRef, PictureStore
from bot.chat.states import UpscaleDialog
from bot.chat.upscale_options import DENOISE, MODELS, SCALES, UpscaleChoice, choose, upscale_choice
from bot.chat.upscale_plan import input_side, plan_upscale
from bot.handlers.common import (ATTACHMENT, KEPT_PICTURE, fetch_kept, fetch_ref, find_result, keep_aside,
                                 restart_dialog, take_picture)
from bot.jobs.job import Job, JobDone
from bot.settings import Settings

router = Router(name="upscale")

COMPARE_FIRST = "compare_first"   # dialog data: the picture to come gets the compare sheet


def ask_text() -> str:
    return _("🔍 Send me the picture to upscale. I'll send it back larger, as a file, so Telegram doesn't "
             "compress it. Choose below how, or just send it:")


def choices_text() -> str:
    return _("🔍 How shall I upscale it? Your choice is remembered for next time.")


async def menu_for(state: FSMContext, messenger: JobMessenger, *, compare_first: bool | None):
    return choices_menu(await upscale_choice(state), messenger, compare_first=compare_first)


def choices_menu(choice: UpscaleChoice, messenger: JobMessenger, *, compare_first: bool | None = None):
    """The choices as buttons; compare_first None: a picture is kept, so they end in a button that runs them."""
    device = messenger.device()
    return upscale_menu(choice.model_on(device), choice.scale, choice.denoise,
                        slower=messenger.upscale_clock.slower(device, "x4plus"), compare_first=compare_first)


@router.message(Command("upscale"))
async def upscale_command(message: Message, state: FSMContext, messenger: JobMessenger) -> None:
    await restart_dialog(state, keep_picture=False)
    await state.set_state(UpscaleDialog.waiting_picture)
    await ask_for_picture(message, message.from_user, ask_text(),
                          reply_markup=await menu_for(state, messenger, compare_first=False))


@router.callback_query(Action.filter(F.name == "upscale"))
async def upscale_button(callback: CallbackQuery, state: FSMContext, messenger: JobMessenger) -> None:
    await callback.answer()
    kept = await restart_dialog(state, keep_picture=True)
    if kept is not None:
        await offer_choices(callback.message, state, messenger, kept)
        return
    await state.set_state(UpscaleDialog.waiting_picture)
    await ask_for_picture(callback.message, callback.from_user, ask_text(),
                          reply_markup=await menu_for(state, messenger, compare_first=False))


async def offer_choices(chat: Message, state: FSMContext, messenger: JobMessenger, picture: PictureRef) -> None:
    """A picture is there: the choices, with a button to run them."""
    await keep_aside(state, picture)
    await chat.answer(choices_text(), reply_markup=await menu_for(state, messenger, compare_first=None))


@router.callback_query(UpscaleOption.filter())
async def pick_option(callback: CallbackQuery, callback_data: UpscaleOption, state: FSMContext,
                      messenger: JobMessenger) -> None:
    name, value = callback_data.name, callback_data.value
    waiting = await state.get_state() == UpscaleDialog.waiting_picture.state
    kept = await state.get_value(KEPT_PICTURE)
    if not waiting and kept is None:
        await callback.answer(_("This button has expired. Send /upscale to begin again."), show_alert=True)
        return
    if name == "model" and value in MODELS:
        await choose(state, model=value)
        await callback.answer(model_note(value))
    elif name == "scale" and value.isdigit() and int(value) in SCALES:
        await choose(state, scale=int(value))
        await callback.answer(_("×{n}: {n} times the width and height.").format(n=value))
    elif name == "denoise" and value in DENOISE:
        await choose(state, denoise=value)
        await callback.answer({"off": _("Denoise off: grain and fine texture stay."),
                               "medium": _("Denoise medium: some grain goes, texture stays."),
                               "strong": _("Denoise strong: smooth and clean, fine texture goes too.")}[value])
    elif name == "compare" and waiting:
        await state.update_data({COMPARE_FIRST: value == "on"})
        await callback.answer(_("I'll show the models side by side first.") if value == "on" else None)
    else:
        await callback.answer()
        return
    compare_first = bool(await state.get_value(COMPARE_FIRST)) if waiting else None
    markup = await menu_for(state, messenger, compare_first=compare_first)
    if isinstance(callback.message, Message) and markup != callback.message.reply_markup:
        await messenger.status.safely(callback.message.edit_reply_markup(reply_markup=markup))


def model_note(model: str) -> str:
    if model == "x4plus":
        return _("🔬 Photo, finest: the large Real-ESRGAN model; the finest detail, and much slower.")
    if model == "anime":
        return _("🎌 Drawing / anime: clean lines and flat colours, for drawings, anime and cartoons.")
    return _("📷 Photo: the compact Real-ESRGAN model for photos; quick.")


@router.callback_query(UpscaleGo.filter())
async def go(callback: CallbackQuery, callback_data: UpscaleGo, state: FSMContext, settings: Settings,
             pictures: PictureStore, messenger: JobMessenger) -> None:
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    if picture is None:
        await callback.answer(_("I no longer have this picture. Please send it again."), show_alert=True)
        return
    await callback.answer()
    await run_choice(callback.message, callback.from_user.id, state, settings, messenger, picture,
                     await upscale_choice(state), callback_data.what)


@router.message(UpscaleDialog.waiting_picture, ATTACHMENT, F.media_group_id.is_(None))
async def got_picture(message: Message, state: FSMContext, settings: Settings, pictures: PictureStore,
                      messenger: JobMessenger) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is not None:
        await run_choice(message, message.from_user.id, state, settings, messenger, picture,
                         await upscale_choice(state), "compare" if await state.get_value(COMPARE_FIRST) else "run")


async def run_choice(chat: Message, user_id: int, state: FSMContext, settings: Settings, messenger: JobMessenger,
                     picture: Picture, choice: UpscaleChoice, what: str) -> None:
    """what: run, compare, compare_full (a part of a large picture at its own size), anyway (run, though large)."""
    if what == "run" and already_large(picture, choice, settings, messenger):
        await keep_aside(state, picture.ref)
        side, _limited_by = input_side(picture, choice.scale, settings, messenger)
        await chat.answer(large_text(picture, side, choice.scale), reply_markup=large_picture_menu())
        return
    if what in ("compare", "compare_full"):
        if await start_compare(chat, user_id, settings, messenger, picture, choice, full_size=what == "compare_full"):
            # The picture stays kept: the buttons the user saw before the sheet still work on it.
            await keep_aside(state, picture.ref)
    elif await start_upscale(chat, user_id, state, settings, messenger, picture, choice):
        await state.clear()


def already_large(picture: Picture, choice: UpscaleChoice, settings: Settings, messenger: JobMessenger) -> bool:
    """The result would not be even twice the picture's own size: it is shrunk to the workers' side first."""
    side, _limited_by = input_side(picture, choice.scale, settings, messenger)
    return min(side, max(picture.width, picture.height)) * choice.scale < 2 * max(picture.width, picture.height)


def large_text(picture: Picture, side: int, scale: int) -> str:
    shrink = min(1.0, side / max(picture.width, picture.height))
    return _("📐 Your picture is already large: {w}×{h}. I work on pictures of up to {side} px here, so I would "
             "shrink it first, and the ×{scale} result ({W}×{H}) would hold less real detail than your own file. "
             "See what the models do to a part of it at full size first, or upscale it anyway.").format(
        w=picture.width, h=picture.height, side=side, scale=scale,
        W=round(picture.width * shrink) * scale, H=round(picture.height * shrink) * scale)


# --- the jobs ---------------------------------------------------------------------------------

async def start_upscale(chat: Message, user_id: int, state: FSMContext, settings: Settings,
                        messenger: JobMessenger, picture: Picture, choice: UpscaleChoice) -> bool:
    """Submit the upscale; False if it did not start (the user has been told why)."""
    plan = plan_upscale(chat.chat.id, user_id, picture, choice, settings, messenger)
    if plan.job is None:   # too slow here: the picture stays, with the choices, so another model is a tap away
        await keep_aside(state, picture.ref)
        await chat.answer(plan.note, reply_markup=choices_menu(choice, messenger))
        return False
    return await messenger.submit(chat, plan.job, as_document=True, source=picture.ref, heading=plan.note,
                                  describe_result=lambda done: plan.describe(picture, done),
                                  menu=upscale_result_menu)


async def start_compare(chat: Message, user_id: int, settings: Settings, messenger: JobMessenger,
                        picture: Picture, choice: UpscaleChoice, *, full_size: bool = False) -> bool:
    """The compare sheet: the picture's most detailed part as each model makes it, at 1:1.

    full_size: the part is cut from the picture as sent (not as shrunk to the workers' side),
    so the sheet shows what the models do to the user's own pixels."""
    side, _limited_by = input_side(picture, choice.scale, settings, messenger)
    slower = messenger.upscale_clock.slower(messenger.device(), "x4plus")
    data = await asyncio.to_thread(full_size_part, picture.data) if full_size else picture.data
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="upscale_compare", images={"image": data},
              options={"models": list(MODELS), "labels": [upscale_model_name(m) for m in MODELS],
                       # x4 whatever the scale chosen: the networks' own scale, where they differ most, and
                       # 192 px panels (x2 of the 48 px region would be 96 px panels, too small to judge;
                       # a larger region would cost x4plus four times as much)
                       "original_label": _("original"), "scale": 4,
                       "denoise": DENOISE[choice.denoise], "max_side": side}, output="png")

    def describe(_done: JobDone) -> str:
        text = _("🔍 The part of your picture with the most detail, ×4 at 1:1 pixels: your original "
                 "(its pixels enlarged) and each model. Tap a model for the whole picture, at the scale you "
                 "chose (×{scale}).").format(scale=choice.scale)
        if full_size:
            text += "\n" + _("This part is at your picture's own size; the whole picture would be shrunk to "
                             "{side} px first.").format(side=side)
        return text

    return await messenger.submit(chat, job, source=picture.ref, describe_result=describe,
                                  menu=lambda job_id: compare_menu(job_id, slower))


# --- under a compare sheet and under a result ---------------------------------------------------

def expired_text() -> str:
    return _("I no longer have this picture. Please send it again.")


async def source_of(callback: CallbackQuery, job_id: str, state: FSMContext, pictures: PictureStore,
                    ) -> tuple[dict, Picture] | None:
    """The record of a result the buttons belong to, and the user's own picture it came from;
    None once either is gone (the user has been told)."""
    record = await find_result(state, job_id)
    if record is None or record.get("source") is None:
        await callback.answer(expired_text(), show_alert=True)
        return None
    await callback.answer()
    picture = await fetch_ref(callback.message, callback.from_user.id, PictureRef.from_data(record["source"]),
                              pictures)
    return None if picture is None else (record, picture)


@router.callback_query(ComparePick.filter(F.model.in_(MODELS)))
async def pick_compared(callback: CallbackQuery, callback_data: ComparePick, state: FSMContext,
                        settings: Settings, pictures: PictureStore, messenger: JobMessenger) -> None:
    """A model under the compare sheet: chosen for next time too, and its full result now."""
    found = await source_of(callback, callback_data.job_id, state, pictures)
    if found is not None:
        choice = await choose(state, model=callback_data.model)
        await start_upscale(callback.message, callback.from_user.id, state, settings, messenger, found[1], choice)


@router.callback_query(ResultAction.filter(F.name == "compare"))
async def compare_result(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext,
                         settings: Settings, pictures: PictureStore, messenger: JobMessenger) -> None:
    """Under an upscaled picture: the models side by side, on the user's own picture."""
    found = await source_of(callback, callback_data.job_id, state, pictures)
    if found is not None:
        await start_compare(callback.message, callback.from_user.id, settings, messenger, found[1],
                            await upscale_choice(state))


@router.callback_query(ResultAction.filter(F.name == "before_after"))
async def before_and_after(callback: CallbackQuery, callback_data: ResultAction, state: FSMContext,
                           pictures: PictureStore) -> None:
    """The result's most detailed part at 1:1 beside the same part of the original, as a photo:
    the document's preview shrinks the result, which hides what the network did."""
    found = await source_of(callback, callback_data.job_id, state, pictures)
    if found is None:
        return
    record, original = found
    result = await fetch_ref(callback.message, callback.from_user.id, PictureRef.from_data(record["result"]), pictures)
    if result is None:
        return
    labels = (_("before: your pixels, enlarged"), _("after"))
    crop = await asyncio.to_thread(before_after_png, original.data, result.data, labels)
    await callback.message.answer_photo(BufferedInputFile(crop, filename="stylebot-before-after.png"),
                                        caption=_("🔎 Before and after, at the result's 1:1 pixels, where your "
                                                  "picture has the most detail."))


def full_size_part(data: bytes) -> bytes:
    """The most detailed part of the picture as sent, with the context an upscaler's tile gets."""
    from nets.compare import COMPARE_SIDE, TILE_CONTEXT, detail_part
    from nets.imageio import encode_png, load_image

    return encode_png(detail_part(load_image(data), COMPARE_SIDE, TILE_CONTEXT))


def before_after_png(original: bytes, result: bytes, labels: tuple[str, str]) -> bytes:
    from nets.compare import before_after
    from nets.imageio import encode_png, load_image

    # the result is at most 4096 x 4096 (MAX_RESULT_PIXELS), well within load_image's own cap
    return encode_png(before_after(load_image(original), load_image(result), labels=labels))

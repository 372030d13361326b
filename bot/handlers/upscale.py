"""/upscale: four times the pixels, sent as a file so Telegram keeps every one.

The input is shrunk first where 4x would pass what we can send (a PNG over
Telegram's 50 MB document limit) or the configured MAX_SIDE; the caption then
says what the factor really was and why.
"""
import math

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import Action
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureStore
from bot.chat.states import UpscaleDialog
from bot.handlers.common import ATTACHMENT, fetch_kept, restart_dialog, take_picture
from bot.jobs.job import Job, JobDone
from bot.settings import Settings

router = Router(name="upscale")

SCALE = 4
# 4096 x 4096: a PNG of a photo this size stays well under the 50 MB document limit.
MAX_RESULT_PIXELS = 4096 * 4096


def ask_text() -> str:
    return _("🔍 Send me the picture to upscale. I'll make it four times larger and send it back as a file, "
             "so Telegram doesn't compress it.")


@router.message(Command("upscale"))
async def upscale_command(message: Message, state: FSMContext) -> None:
    await restart_dialog(state, keep_picture=False)
    await state.set_state(UpscaleDialog.waiting_picture)
    await ask_for_picture(message, message.from_user, ask_text())


@router.callback_query(Action.filter(F.name == "upscale"))
async def upscale_button(callback: CallbackQuery, state: FSMContext, settings: Settings, pictures: PictureStore,
                         messenger: JobMessenger) -> None:
    await callback.answer()
    picture = await fetch_kept(callback.message, callback.from_user.id, state, pictures)
    await restart_dialog(state, keep_picture=False)
    if picture is not None:
        await start_upscale(callback.message, callback.from_user.id, settings, messenger, picture)
        return
    await state.set_state(UpscaleDialog.waiting_picture)
    await ask_for_picture(callback.message, callback.from_user, ask_text())


@router.message(UpscaleDialog.waiting_picture, ATTACHMENT)
async def got_picture(message: Message, state: FSMContext, settings: Settings, pictures: PictureStore,
                      messenger: JobMessenger) -> None:
    picture = await take_picture(message, pictures, messenger)
    if picture is not None and await start_upscale(message, message.from_user.id, settings, messenger, picture):
        await state.clear()


async def start_upscale(chat: Message, user_id: int, settings: Settings, messenger: JobMessenger,
                        picture: Picture) -> bool:
    longer = max(picture.width, picture.height)
    shorter = min(picture.width, picture.height)
    # The longest input side whose 4x result keeps within the pixel budget.
    budget_side = math.floor(math.sqrt(MAX_RESULT_PIXELS / SCALE**2 * longer / shorter))
    # The workers' side limit follows their device (bot/jobs/device_limits.py); they cap input_side to it too.
    max_side = messenger.queue.limit("max_side", settings.max_side)
    input_side = min(max_side, budget_side)
    limited_by = "telegram" if budget_side < max_side else "config"
    job = Job(user_id=user_id, chat_id=chat.chat.id, op="upscale", images={"image": picture.data},
              options={"model": "auto", "scale": SCALE, "max_side": input_side}, output="png")

    def describe(done: JobDone) -> str:
        size = _("{w}×{h} → {W}×{H} pixels.").format(w=picture.width, h=picture.height,
                                                       W=done.width, H=done.height)
        factor = done.width / picture.width
        if factor > SCALE - 0.05:
            return _("Upscaled ×4: {size}").format(size=size)
        if limited_by == "telegram":
            why = _("a full ×4 would be too big for Telegram to send")
        else:
            why = _("a full ×4 would pass this bot's size limit")
        return _("Upscaled ×{factor:.1f} rather than ×4, because {why}: {size}").format(
            factor=factor, why=why, size=size)

    return await messenger.submit(chat, job, as_document=True, source=picture.ref, describe_result=describe)

"""/style: a style picture, then a content picture, then the painting.

The mode (⚡ Fast: the lite network; 🎨 Detailed: AdaIN; 💎 Quality: Gatys's
optimisation), strength and colours are buttons beside the questions; none of
them is a step, so with no tap the defaults apply and the job starts as soon
as both pictures are in.
"""
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, User
from aiogram.utils.i18n import gettext as _

from bot.chat.groups import ask_for_picture
from bot.chat.keyboards import FAST_MODELS, STRENGTHS, Action, StyleOption, style_options
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import Picture, PictureRef, PictureStore
from bot.chat.states import StyleDialog
from bot.handlers.common import (ATTACHMENT, fast_model, fetch_ref, mix_record, pick_fast_model, restart_dialog,
                                 take_picture)
from bot.jobs.job import Job
from bot.settings import Settings

router = Router(name="style")

MODES = (*FAST_MODELS, "quality")


async def default_options(state: FSMContext, settings: Settings) -> dict:
    return {"mode": await fast_model(state, settings), "strength": 100, "colors": False}


def options_keyboard(options: dict):
    return style_options(options["mode"], options["strength"], options["colors"])


@router.message(Command("style"))
async def style_command(message: Message, state: FSMContext, settings: Settings) -> None:
    await restart_dialog(state, keep_picture=False)
    await ask_for_style(message, message.from_user, state, settings, content=None)


@router.callback_query(Action.filter(F.name == "style"))
async def style_button(callback: CallbackQuery, state: FSMContext, settings: Settings) -> None:
    await callback.answer()
    content = await restart_dialog(state, keep_picture=True)
    await ask_for_style(callback.message, callback.from_user, state, settings, content=content)


async def ask_for_style(message: Message, user: User, state: FSMContext, settings: Settings,
                        content: PictureRef | None) -> None:
    options = await default_options(state, settings)
    await state.set_state(StyleDialog.waiting_style)
    await state.update_data(options=options, content=content.as_data() if content else None)
    if content is None:
        text = _("🎨 Send me the style picture: a painting, a drawing, any picture whose look you like. "
                 "Then I'll ask for the photo to paint.")
    else:
        text = _("🎨 Now send me the style picture: a painting, a drawing, any picture whose look you like. "
                 "I'll paint your photo in it.")
    await ask_for_picture(message, user, text + "\n\n" + options_hint(), reply_markup=options_keyboard(options))


def options_hint() -> str:
    return _("Optional: ⚡ Fast (seconds), 🎨 Detailed (finer, slower) or 💎 Quality (the finest, about a minute), "
             "the strength, keeping your photo's colours. Without a tap I use the ticked ones.")


@router.message(StyleDialog.waiting_style, ATTACHMENT)
async def got_style(message: Message, state: FSMContext, pictures: PictureStore, messenger: JobMessenger,
                    settings: Settings) -> None:
    style = await take_picture(message, pictures, messenger)
    if style is None:
        return
    data = await state.update_data(style=style.ref.as_data())
    content_ref = PictureRef.from_data(data.get("content"))
    if content_ref is None:
        await state.set_state(StyleDialog.waiting_content)
        await ask_for_picture(message, message.from_user, _("👍 Got the style. Now send the photo you want painted in it."),
                              reply_markup=options_keyboard(data["options"]))
        return
    content = await fetch_ref(message, message.from_user.id, content_ref, pictures)
    if content is not None:
        await paint(message, state, messenger, settings, content=content, style=style, options=data["options"])


@router.message(StyleDialog.waiting_content, ATTACHMENT)
async def got_content(message: Message, state: FSMContext, pictures: PictureStore,
                      messenger: JobMessenger, settings: Settings) -> None:
    content = await take_picture(message, pictures, messenger)
    if content is None:
        return
    data = await state.get_data()
    style = await fetch_ref(message, message.from_user.id, PictureRef.from_data(data["style"]), pictures)
    if style is not None:
        await paint(message, state, messenger, settings, content=content, style=style, options=data["options"])


async def paint(message: Message, state: FSMContext, messenger: JobMessenger, settings: Settings, *,
                content: Picture, style: Picture, options: dict) -> None:
    job_options = {"strength": options["strength"] / 100, "preserve_colors": options["colors"]}
    if options["mode"] == "quality":
        op = "stylize_quality"
        # Steps and side come from the worker's device (bot/jobs/device_limits.py): a GPU affords more.
    else:
        op = "stylize"
        job_options["model"] = options["mode"] if options["mode"] in FAST_MODELS else settings.default_fast_style
    job = Job(user_id=message.from_user.id, chat_id=message.chat.id, op=op,
              images={"content": content.data, "style": style.data}, options=job_options)
    # "🎭 Mix with another painting" under the result mixes this style with a second one.
    if await messenger.submit(message, job, source=content.ref, remember=mix_record({"picture": style.ref.as_data()})):
        await state.clear()


@router.callback_query(StyleDialog.waiting_style, StyleOption.filter())
@router.callback_query(StyleDialog.waiting_content, StyleOption.filter())
async def change_option(callback: CallbackQuery, callback_data: StyleOption, state: FSMContext,
                        settings: Settings) -> None:
    before = (await state.get_data()).get("options") or await default_options(state, settings)
    options = dict(before)
    name, value = callback_data.name, callback_data.value
    if name == "mode" and value in MODES:
        options["mode"] = value
        if value in FAST_MODELS:
            await pick_fast_model(state, value)   # remembered for next time, presets included
        note = {"quality": _("Quality mode: slower and finer; I'll show the progress."),
                "lite": _("Fast: a small network, the result in a second or two."),
                "adain": _("Detailed: a larger network with finer detail; it takes longer.")}[value]
    elif name == "strength" and value.isdigit() and int(value) in STRENGTHS:
        options["strength"] = int(value)
        note = _("Style strength: {percent}%").format(percent=value)
    elif name == "colors":
        options["colors"] = value == "on"
        note = _("I'll keep your photo's colours.") if options["colors"] else _("I'll use the style's colours.")
    else:
        await callback.answer(_("This button has expired."))
        return
    await callback.answer(note)
    if not isinstance(callback.message, Message):
        # An InaccessibleMessage (too old to edit): the options come anew, ticked as they now are.
        await state.update_data(options=options)
        await callback.message.answer(note + "\n\n" + options_hint(), reply_markup=options_keyboard(options))
    elif options != before:
        await state.update_data(options=options)
        await callback.message.edit_reply_markup(reply_markup=options_keyboard(options))

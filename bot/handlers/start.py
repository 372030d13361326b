"""/start and /help: what the bot can do, and how to ask for it."""
from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.chat.keyboards import Action, main_menu

router = Router(name="start")


def greeting_text(first_name: str) -> str:
    return _("Hi, {name}! 👋 I turn photos into art and make pictures sharper.\n\n"
             "🎨 Paint your photo in the style of any picture you send\n"
             "🖼 …or like a famous painting\n"
             "❄️ Turn summer into winter and back\n"
             "🔍 Upscale a picture four times\n\n"
             "Send me a photo, or pick what to do:").format(name=first_name)


def help_text() -> str:
    return _("Here is what I can do:\n\n"
             "/style — paint a photo in the style of another picture: send the style, then the photo. "
             "Buttons let you pick ⚡ Fast, 🎨 Detailed or 💎 Quality mode, the strength, and whether to keep "
             "the photo's colours.\n"
             "/presets — paint a photo like a famous painting or painter, or see it in every painting at once; "
             "under a painted result, 🎭 mix it with a second painting\n"
             "/season — turn a summer landscape into winter, or winter into summer\n"
             "/upscale — make a picture four times larger and sharper; it comes back as a file\n"
             "/cancel — stop the current job or dialog\n"
             "/lang — choose English or Russian\n"
             "/feedback — write to the bot's author (anonymously)\n"
             "/reset — make me forget you: pictures, settings and language\n"
             "/help — this message\n\n"
             "You can also just send a photo, and I'll ask what to do with it. "
             "I accept photos, image files (JPEG, PNG, WebP, BMP, TIFF) and still stickers up to 20 MB.")


@router.message(CommandStart())
async def start(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(greeting_text(message.from_user.first_name), reply_markup=main_menu())


@router.message(Command("help"))
async def show_help(message: Message) -> None:
    await message.answer(help_text())


@router.callback_query(Action.filter(F.name == "help"))
async def help_button(callback: CallbackQuery) -> None:
    await callback.answer()
    await callback.message.answer(help_text())

"""/feedback: the user's next text goes to the admin chat, without who wrote it."""
from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.chat.states import FeedbackDialog
from bot.settings import Settings

router = Router(name="feedback")

MESSAGE_LIMIT = 4096


@router.message(Command("feedback"))
async def ask_feedback(message: Message, state: FSMContext, settings: Settings) -> None:
    await state.clear()
    if settings.admin_chat_id is None:
        await message.answer(_("Feedback is switched off on this bot, sorry."))
        return
    await state.set_state(FeedbackDialog.waiting_text)
    await message.answer(_("✍️ Write your message in one text and I'll pass it on to the bot's author. "
                           "Your name and username are not shown to them.\nChanged your mind? Send /cancel."))


@router.message(FeedbackDialog.waiting_text, F.text, ~F.text.startswith("/"))
async def pass_feedback_on(message: Message, state: FSMContext, settings: Settings) -> None:
    header = "💬 Feedback:\n\n"
    # The header is left out when the two together would pass Telegram's 4096 characters.
    text = header + message.text if len(header) + len(message.text) <= MESSAGE_LIMIT else message.text
    try:
        # A new message rather than a forward: a forward would show who wrote it.
        await message.bot.send_message(settings.admin_chat_id, text)
    except TelegramAPIError:
        await message.answer(_("😔 Sorry, I couldn't deliver your message right now. Please try again later."))
        return
    await state.clear()
    await message.answer(_("🙏 Thank you! Your message has been passed on."))


@router.message(FeedbackDialog.waiting_text, ~F.text)
async def feedback_must_be_text(message: Message) -> None:
    await message.answer(_("Please write your feedback as text, or send /cancel."))

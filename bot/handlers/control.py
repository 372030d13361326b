"""/cancel and /reset: ways out that work from anywhere, so this router comes first."""
from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.chat.i18n import locale_from_telegram, profile_of
from bot.chat.messenger import JobMessenger
from bot.chat.pictures import PictureStore

router = Router(name="control")


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext, messenger: JobMessenger) -> None:
    in_batch = message.from_user.id in messenger.batches
    job_cancelled = await messenger.cancel(message.from_user.id)
    in_dialog = await state.get_state() is not None or bool(await state.get_data())
    await state.clear()
    if in_batch:
        return   # the batch has said what it stopped and sent what was done
    if job_cancelled:
        await message.answer(_("🛑 Cancelled. I stopped working on your picture; nothing more will come from it."))
    elif in_dialog:
        await message.answer(_("🛑 Cancelled. Send /start whenever you like."))
    else:
        await message.answer(_("There was nothing to cancel."))


@router.message(Command("reset"))
async def reset(message: Message, state: FSMContext, messenger: JobMessenger, pictures: PictureStore,
                i18n: I18n) -> None:
    user: User = message.from_user
    await messenger.cancel(user.id)
    await state.clear()
    await profile_of(state).clear()
    pictures.forget_user(user.id)
    # The language choice is gone too, so the answer already speaks the Telegram app's language.
    with i18n.use_locale(locale_from_telegram(user)):
        await message.answer(_("🧹 Done: I've forgotten everything about you — your pictures, jobs, results "
                               "and language choice. Send /start to begin afresh."))

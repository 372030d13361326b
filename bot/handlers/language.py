"""/lang: English or Russian, remembered until /reset."""
from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.chat.i18n import LANGUAGES, choose_locale
from bot.chat.keyboards import Action, LanguagePick, languages_menu

router = Router(name="language")


def choose_text() -> str:
    return _("Choose the language I speak to you in:")


@router.message(Command("lang", "language"))
async def ask_language(message: Message) -> None:
    await message.answer(choose_text(), reply_markup=languages_menu())


@router.callback_query(Action.filter(F.name == "lang"))
async def language_button(callback: CallbackQuery) -> None:
    await callback.answer()
    await callback.message.answer(choose_text(), reply_markup=languages_menu())


@router.callback_query(LanguagePick.filter(F.locale.in_(LANGUAGES)))
async def pick_language(callback: CallbackQuery, callback_data: LanguagePick, state: FSMContext,
                        i18n: I18n) -> None:
    await choose_locale(state, callback_data.locale)
    with i18n.use_locale(callback_data.locale):
        confirmation = _("Done: I'll speak English from now on.")
        await callback.answer(confirmation)
        if isinstance(callback.message, Message):
            await callback.message.edit_text(confirmation)
        else:   # an InaccessibleMessage: too old for the bot to edit, so it says so anew
            await callback.message.answer(confirmation)

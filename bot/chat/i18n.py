"""Languages: gettext catalogues under bot/locales and the locale of each update.

The /lang choice lives in FSM data under its own destiny ("profile"), so the
dialogs can clear their state freely and the language still holds; /reset
clears the profile too. (A Redis storage would need
`DefaultKeyBuilder(with_destiny=True)` to keep the two apart.)
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"   # the whole bot's catalogue
DEFAULT_LOCALE = "en"
LANGUAGES = {"en": "English", "ru": "Русский"}
PROFILE_DESTINY = "profile"
LOCALE_KEY = "locale"


def make_i18n() -> I18n:
    return I18n(path=LOCALES_DIR, default_locale=DEFAULT_LOCALE, domain="messages")


def locale_from_telegram(user: User | None) -> str:
    """Russian for Telegram clients set to Russian, English for everyone else."""
    code = (user.language_code or "") if user else ""
    return "ru" if code.lower().split("-")[0] == "ru" else DEFAULT_LOCALE


def profile_of(state: FSMContext) -> FSMContext:
    """The user's long-lived record, beside (not inside) the dialog state."""
    return FSMContext(storage=state.storage, key=replace(state.key, destiny=PROFILE_DESTINY))


def profile_for(storage: BaseStorage, bot_id: int, chat_id: int, user_id: int) -> FSMContext:
    return FSMContext(storage=storage, key=StorageKey(bot_id, chat_id, user_id, destiny=PROFILE_DESTINY))


async def chosen_locale(profile: FSMContext) -> str | None:
    locale = await profile.get_value(LOCALE_KEY)
    return locale if locale in LANGUAGES else None


async def choose_locale(state: FSMContext, locale: str) -> None:
    await profile_of(state).update_data({LOCALE_KEY: locale})


class UserLocaleMiddleware(I18nMiddleware):
    """The /lang choice if the user made one, else the Telegram client's language."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        state: FSMContext | None = data.get("state")
        if state is not None and (locale := await chosen_locale(profile_of(state))):
            return locale
        return locale_from_telegram(data.get("event_from_user"))


@contextmanager
def in_locale(i18n: I18n, locale: str) -> Iterator[None]:
    """Texts in `locale` outside a handler (job events arrive outside any update)."""
    with i18n.context(), i18n.use_locale(locale):
        yield

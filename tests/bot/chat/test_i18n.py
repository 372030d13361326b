"""The catalogues: every text the bot says exists in Russian, and the locale rules hold."""
import asyncio
import re
from pathlib import Path

import pytest
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import User
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.chat.i18n import LOCALES_DIR, UserLocaleMiddleware, choose_locale, locale_from_telegram, make_i18n, profile_of

BOT_DIR = Path(__file__).resolve().parents[3] / "bot"
KEYWORDS = {**DEFAULT_KEYWORDS, "__": None}   # __ is lazy_gettext in bot/presets.py
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def catalogue(locale: str):
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=locale)


def texts_in_code() -> set:
    """Every msgid the code passes to _(), ngettext or __, found as pybabel extract finds them."""
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(BOT_DIR), method_map=[("**.py", "python")], keywords=KEYWORDS):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_the_code_has_texts_to_translate():
    assert len(texts_in_code()) > 50


def test_every_text_in_the_code_is_in_the_catalogue():
    in_catalogue = {m.id[0] if isinstance(m.id, tuple) else m.id for m in catalogue("ru") if m.id}
    missing = texts_in_code() - in_catalogue
    assert not missing, f"run bash bot/locales/build.sh; not in the catalogue: {sorted(missing)}"


def test_every_russian_text_is_translated_and_keeps_its_placeholders():
    for message in catalogue("ru"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(s.strip() for s in strings), f"untranslated: {ids[0]!r}"
        assert not message.fuzzy, f"fuzzy: {ids[0]!r}"
        for string in strings:
            assert sorted(PLACEHOLDER.findall(string)) == sorted(PLACEHOLDER.findall(ids[-1])), string
        if len(strings) > 1:
            assert len(strings) == 3, "Russian has three plural forms"


def test_english_texts_are_the_codes_own_or_keep_their_placeholders():
    """English speaks the msgids as written; an English msgstr (a merge leaves them) must say the same things."""
    for message in catalogue("en"):
        strings = [s for s in as_tuple(message.string) if s]
        for string in strings if message.id else []:
            ids = as_tuple(message.id)
            assert sorted(PLACEHOLDER.findall(string)) == sorted(PLACEHOLDER.findall(ids[-1])), (ids[0], string)


@pytest.mark.parametrize("locale", ["en", "ru"])
def test_compiled_catalogue_matches_the_po_file(locale):
    with open(LOCALES_DIR / locale / "LC_MESSAGES" / "messages.mo", "rb") as f:
        compiled = {as_tuple(m.id): as_tuple(m.string) for m in read_mo(f) if m.id}
    for message in catalogue(locale):
        if message.id and not any(as_tuple(message.string)):
            continue   # left empty: gettext answers with the msgid, and the .mo leaves it out
        if message.id:
            assert compiled.get(as_tuple(message.id)) == as_tuple(message.string), \
                "stale .mo: run bash bot/locales/build.sh compile"


def as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def test_russian_plural_forms():
    i18n = make_i18n()
    forms = [i18n.gettext("🕐 In the queue: {n} job ahead of yours.", "🕐 In the queue: {n} jobs ahead of yours.",
                          n, locale="ru").format(n=n) for n in (1, 3, 5, 21)]
    assert forms == ["🕐 В очереди: перед вами 1 задача.", "🕐 В очереди: перед вами 3 задачи.",
                     "🕐 В очереди: перед вами 5 задач.", "🕐 В очереди: перед вами 21 задача."]


@pytest.mark.parametrize("code, locale", [("ru", "ru"), ("ru-RU", "ru"), ("RU", "ru"), ("en", "en"),
                                          ("de", "en"), ("uk", "en"), (None, "en")])
def test_locale_from_telegram_language_code(code, locale):
    user = User(id=1, is_bot=False, first_name="A", language_code=code)
    assert locale_from_telegram(user) == locale


def test_lang_choice_beats_language_code_survives_the_dialog_and_goes_with_reset():
    async def scenario():
        i18n = make_i18n()
        middleware = UserLocaleMiddleware(i18n)
        state = FSMContext(MemoryStorage(), StorageKey(bot_id=1, chat_id=7, user_id=7))
        english_app = User(id=7, is_bot=False, first_name="A", language_code="en")

        async def locale_now():
            return await middleware.get_locale(event=None, data={"state": state, "event_from_user": english_app})

        assert await locale_now() == "en"
        await choose_locale(state, "ru")
        assert await locale_now() == "ru"
        await state.set_state("StyleDialog:waiting_style")
        await state.clear()                      # a dialog ends: the language stays
        assert await locale_now() == "ru"
        await profile_of(state).clear()          # what /reset does
        assert await locale_now() == "en"

    asyncio.run(scenario())

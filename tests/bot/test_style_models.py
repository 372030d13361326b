"""Choosing the fast network (⚡ Fast = lite, 🎨 Detailed = AdaIN) and the preview sheet of every
painting, played by a test user against the fake Bot API with the real engine."""
import re

import pytest

from tests.bot.pictures import picture
from tests.bot.test_dialogs import JOB_S, eventually, presets_dir  # noqa: F401 (a fixture)


@pytest.fixture
def bot_env(presets_dir):  # noqa: F811
    return {"PRESETS_DIR": str(presets_dir)}


@pytest.fixture
def alice(fake_tg):
    return fake_tg.add_user(first_name="Alice", language_code="en")


def ran(bot, op: str, model: str) -> bool:
    """The worker logs each finished job with the choices that changed the work."""
    return re.search(rf"job \w+: {op} \d+x\d+ \(model={model}\b", bot.log) is not None


def test_style_runs_the_network_the_user_ticks_and_remembers_it(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    labels = [b["text"] for b in ask.buttons]
    assert "✅ ⚡ Fast" in labels and "🎨 Detailed" in labels and "💎 Quality (slow)" in labels

    press = fake_tg.press(alice, ask, text="🎨 Detailed")
    assert "finer detail" in press.answer()["text"]
    ask = fake_tg.wait_for(lambda m: m is ask and "✅ 🎨 Detailed" in [b["text"] for b in m.buttons], after=press)
    fake_tg.send_photo(alice, picture(seed=3))
    sent = fake_tg.send_photo(alice, picture((200, 150)))
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert "Done" in result.caption
    assert eventually(lambda: ran(bot, "stylize", "adain")), bot.log[-2000:]

    # The choice holds for the next dialog, and for the paintings too.
    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    assert "✅ 🎨 Detailed" in [b["text"] for b in menu.buttons]
    press = fake_tg.press(alice, menu, text="⚡ Fast")
    assert "small network" in press.answer()["text"]
    menu = fake_tg.wait_for(lambda m: m is menu and "✅ ⚡ Fast" in [b["text"] for b in m.buttons], after=press)
    press = fake_tg.press(alice, menu, text="Waves")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture(seed=6))
    assert "Done" in fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S).caption
    assert eventually(lambda: ran(bot, "stylize", "lite")), bot.log[-2000:]
    assert fake_tg.errors() == []


def test_preview_sheet_shows_every_painting_and_a_tile_gives_it_at_full_size(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    press = fake_tg.press(alice, menu, text="All paintings on my photo")
    press.answer()
    fake_tg.wait_for(chat_id=alice.id, text="each of the 2 paintings", after=press)

    sent = fake_tg.send_photo(alice, picture((240, 180), seed=7))
    sheet = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert "every painting" in sheet.caption
    numbers = [b["text"] for b in sheet.buttons if b["text"].isdigit()]
    assert numbers == ["1", "2"]
    width, height = sheet.image().size
    assert width > height * 0.9, "two tiles side by side, one row of them for two paintings"

    press = fake_tg.press(alice, sheet, text="2")
    assert "Stars" in press.answer()["text"]
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)
    assert "Done" in result.caption and result is not sheet
    assert result.image().size == (240, 180), "the full-size painting of the user's own photo"
    assert fake_tg.errors() == []


def test_a_result_offers_the_sheet_of_the_users_own_photo(fake_tg, bot, alice):
    sent = fake_tg.send_photo(alice, picture((200, 160), seed=8))
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    press = fake_tg.press(alice, menu, text="famous painting")
    presets = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=press)
    press = fake_tg.press(alice, presets, text="Waves")
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=JOB_S)

    press = fake_tg.press(alice, result, text="My photo in every painting")
    press.answer()
    sheet = fake_tg.wait_for(lambda m: m.kind == "photo" and "every painting" in (m.caption or ""),
                             chat_id=alice.id, after=press, timeout=JOB_S)
    assert [b["text"] for b in sheet.buttons if b["text"].isdigit()] == ["1", "2"]
    assert fake_tg.errors() == []

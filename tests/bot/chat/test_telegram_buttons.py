"""Buttons as Telegram delivers them: presses too old to answer, on messages too old to show, and a backlog."""
import json
import time

import pytest

from tests.bot.pictures import picture


@pytest.fixture
def bot_env(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "waves.png").write_bytes(picture((96, 64), "PNG", seed=1))
    (folder / "presets.json").write_text(json.dumps([
        {"id": "wave", "file": "waves.png", "author": "Test Painter", "title": "Waves", "year": 1831}]))
    return {"PRESETS_DIR": str(folder)}


def test_a_press_too_old_to_answer_still_acts(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/start")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Hi, Alice", after=sent)
    fake_tg.callback_ttl_s = 0.0          # every answer now comes too late
    press = fake_tg.press(alice, menu, text="Help")
    fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=press)
    refused = fake_tg.calls("answerCallbackQuery")
    assert refused and not refused[-1].ok and "too old" in refused[-1].description

    # A button that starts a dialog goes on too.
    press = fake_tg.press(alice, menu, text="winter")
    fake_tg.wait_for(chat_id=alice.id, text="seasons", after=press)


def test_presses_on_inaccessible_messages_are_answered_and_acted_on_anew(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/lang")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Choose the language", after=sent)
    press = fake_tg.press(alice, menu, text="Русский", inaccessible=True)
    assert press.answer()["text"]
    confirmation = fake_tg.wait_for(chat_id=alice.id, text="по-русски", after=press)
    assert confirmation is not menu and menu.text.startswith("Choose"), "a new message, the old one untouched"

    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="стиля", after=sent)
    press = fake_tg.press(alice, ask, text="50%", inaccessible=True)
    assert press.answer()["text"]
    again = fake_tg.wait_for(lambda m: m is not ask and "✅ 50%" in [b["text"] for b in m.buttons], chat_id=alice.id,
                             after=press)
    assert again.buttons

    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="картин", after=sent)
    unticked = next(b for b in menu.buttons[:2] if not b["text"].startswith("✅"))   # the other fast network
    press = fake_tg.press(alice, menu, unticked["callback_data"], inaccessible=True)
    assert press.answer()["text"]
    anew = fake_tg.wait_for(lambda m: m is not menu, chat_id=alice.id, text="картин", after=press)
    assert anew.buttons[:2] != menu.buttons[:2], "the new menu ticks the network just picked"
    assert fake_tg.errors() == []


def test_messages_that_waited_too_long_are_skipped_with_one_note(fake_tg, start_bot, alice):
    old = int(time.time()) - 3600
    for n, text in enumerate(("/help", "/style")):
        fake_tg.push_update({"message": {"message_id": 900 + n, "date": old, "chat": alice.chat_json(),
                                         "from": alice.to_json(), "text": text,
                                         "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}]}})
    fake_tg.push_update({"message": {"message_id": 902, "date": old, "chat": alice.chat_json(),
                                     "from": alice.to_json(), "photo": []}})
    fresh = fake_tg.send_text(alice, "/start")
    start_bot()
    fake_tg.wait_for(chat_id=alice.id, text="Hi, Alice", after=fresh, timeout=30)
    fake_tg.wait_idle(quiet=0.5)
    texts = [m.text for m in fake_tg.messages(alice.id)]
    assert sum("I was offline" in t for t in texts) == 1
    assert not any("Here is what I can do" in t or "style picture" in t for t in texts)

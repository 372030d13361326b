"""🎭 Mixing two paintings through the bot's buttons, played by a test user against the fake Bot API
with the real engine: after a preset result, after an own-style result with the user's own second
picture, and the buttons that have outlived their result."""
import re

from tests.bot.pictures import picture
from tests.bot.test_dialogs import JOB_S, STATUS, eventually, presets_dir  # noqa: F401 (a fixture)
# The same bot with the test paintings, and the same user, as the fast-network tests.
from tests.bot.test_style_models import alice, bot_env  # noqa: F401 (fixtures)

MIX_BUTTON = "Mix with another painting"


def photo_after(fake_tg, user, after, caption: str = ""):
    """The next picture whose caption has `caption`, once the bot is done with it (its status message
    goes after the result is remembered for its buttons)."""
    photo = fake_tg.wait_for(lambda m: m.kind == "photo" and caption in (m.caption or ""), chat_id=user.id,
                             after=after, timeout=JOB_S)
    assert eventually(lambda: all(m.deleted for m in fake_tg.messages(user.id, include_deleted=True)
                                  if m.kind == "text" and STATUS.search(m.history[0]["text"])))
    return photo


def test_a_preset_result_mixes_with_a_second_preset_at_the_share_picked(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    press = fake_tg.press(alice, menu, text="Waves")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture((200, 150), seed=3))
    result = photo_after(fake_tg, alice, sent, "Done")

    press = fake_tg.press(alice, result, text=MIX_BUTTON)
    ask = fake_tg.wait_for(chat_id=alice.id, text="Which painting shall I mix in", after=press)
    choices = [b["text"] for b in ask.buttons]
    assert choices == ["Another Painter — Stars (c. 1889)"], "the first painting is not offered again"

    press = fake_tg.press(alice, ask, text="Stars")
    assert "Stars" in press.answer()["text"]
    sheet = photo_after(fake_tg, alice, press, "two paintings mixed")
    shares = [b["text"] for b in sheet.buttons if "%" in b["text"]]
    assert shares == ["1. 25%", "2. 50%", "3. 75%"]
    # Three tiles of the 200x150 photo, two columns and two rows (nets/sheet.py's gaps and labels).
    assert sheet.image().size == (2 * (200 + 8) + 8, 2 * (150 + 30 + 8) + 8)

    press = fake_tg.press(alice, sheet, text="75%")
    mixed = photo_after(fake_tg, alice, press, "the second 75%")
    assert mixed.image().size == (200, 150), "the user's own photo at full size"
    assert eventually(lambda: re.search(r"job \w+: stylize 200x150 \(model=lite\)", bot.log)), bot.log[-2000:]
    assert any(MIX_BUTTON in b["text"] for b in mixed.buttons), "a mix can be mixed again from its first painting"

    # Another share from the same sheet, later: the sheet's buttons still know both paintings.
    press = fake_tg.press(alice, sheet, text="25%")
    assert "first painting 75%" in photo_after(fake_tg, alice, press, "the second 25%").caption
    assert fake_tg.errors() == []


def test_an_own_style_result_mixes_with_a_picture_the_user_sends(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    fake_tg.send_photo(alice, picture(seed=4))
    sent = fake_tg.send_photo(alice, picture((160, 120), seed=5))
    result = photo_after(fake_tg, alice, sent, "Done")

    press = fake_tg.press(alice, result, text=MIX_BUTTON)
    fake_tg.wait_for(chat_id=alice.id, text="Which painting shall I mix in", after=press)
    sent = fake_tg.send_text(alice, "this one?")
    fake_tg.wait_for(chat_id=alice.id, text="waiting for the second painting", after=sent)
    sent = fake_tg.send_photo(alice, picture((120, 120), seed=9))
    sheet = photo_after(fake_tg, alice, sent, "two paintings mixed")
    press = fake_tg.press(alice, sheet, text="50%")
    mixed = photo_after(fake_tg, alice, press, "the second 50%")
    assert mixed.image().size == (160, 120)
    assert fake_tg.errors() == []


def test_results_without_a_painting_offer_no_mix_and_old_buttons_say_so(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/season")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent), text="Summer")
    fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
    sent = fake_tg.send_photo(alice, picture())
    result = photo_after(fake_tg, alice, sent, "Done")
    assert not any(MIX_BUTTON in b["text"] for b in result.buttons)

    # A share button whose sheet the bot no longer knows (after /reset).
    sent = fake_tg.send_text(alice, "/presets")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent), text="Stars")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture(seed=6))
    result = photo_after(fake_tg, alice, sent, "Done")
    press = fake_tg.press(alice, result, text=MIX_BUTTON)
    ask = fake_tg.wait_for(chat_id=alice.id, text="Which painting shall I mix in", after=press)
    press = fake_tg.press(alice, ask, text="Waves")
    sheet = photo_after(fake_tg, alice, press, "two paintings mixed")
    sent = fake_tg.send_text(alice, "/reset")
    fake_tg.wait_for(chat_id=alice.id, text="forgotten everything", after=sent)
    press = fake_tg.press(alice, sheet, text="50%")
    assert "no longer have" in press.answer()["text"]
    press = fake_tg.press(alice, result, text=MIX_BUTTON)
    assert "no longer have" in press.answer()["text"]
    assert fake_tg.errors() == []

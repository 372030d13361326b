"""Results through a network as it is: HTML error pages, dropped connections, refused photos, flood control.

Each test starts `python -m bot` against the stricter fake (tests/fake_telegram.py)
and plays a user who asks for a summer-to-winter picture (CycleGAN: quick).
"""
import re

import pytest

from tests.bot.pictures import picture

JOB_S = 180
STATUS = re.compile("Starting|In the queue|Working|Painting")


def ask_for_winter(fake_tg, user):
    sent = fake_tg.send_text(user, "/season")
    menu = fake_tg.wait_for(chat_id=user.id, text="seasons", after=sent)
    press = fake_tg.press(user, menu, text="Summer")
    fake_tg.wait_for(chat_id=user.id, text="photo", after=press)
    return fake_tg.send_photo(user, picture())


def results(fake_tg, user):
    return [m for m in fake_tg.messages(user.id) if m.kind in ("photo", "document")]


def test_an_html_502_page_during_a_result_is_retried_and_arrives_once(fake_tg, bot, alice):
    fake_tg.fault("sendPhoto", "html_502", times=2)
    sent = ask_for_winter(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    fake_tg.wait_idle(quiet=0.5)
    assert [c.status for c in fake_tg.calls("sendPhoto")] == [502, 502, 200]
    assert len(results(fake_tg, alice)) == 1
    assert not [m for m in fake_tg.messages(alice.id) if m.text and STATUS.search(m.text)], "no status left"
    assert fake_tg.errors() == []


def test_a_connection_dropped_after_the_upload_makes_no_second_copy(fake_tg, bot, alice):
    fake_tg.fault("sendPhoto", "drop_after")
    sent = ask_for_winter(fake_tg, alice)
    note = fake_tg.wait_for(chat_id=alice.id, text="may or may not have arrived", after=sent, timeout=JOB_S)
    fake_tg.wait_idle(quiet=0.5)
    # Telegram did post it; the bot never heard so, and did not send it again on its own.
    assert len(fake_tg.calls("sendPhoto")) == 1 and len(results(fake_tg, alice)) == 1
    assert [b["text"] for b in note.buttons] == ["📩 Send it again"]
    shown = fake_tg.messages(alice.id)
    assert shown[-1] is note and shown[-2] is results(fake_tg, alice)[0], "the picture is just above the note"
    assert not any(m.text and STATUS.search(m.text) for m in shown), "no status left"
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="nothing to cancel", after=sent)
    assert fake_tg.errors() == []


def test_a_connection_dropped_before_the_upload_is_sent_again_on_request(fake_tg, bot, alice):
    fake_tg.fault("sendPhoto", "drop")
    sent = ask_for_winter(fake_tg, alice)
    note = fake_tg.wait_for(chat_id=alice.id, text="may or may not have arrived", after=sent, timeout=JOB_S)
    assert results(fake_tg, alice) == []
    press = fake_tg.press(alice, note, text="Send it again")
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=30)
    assert "Done" in result.caption and result.buttons, "the result keeps its caption and buttons"
    fake_tg.wait_idle(quiet=0.5)
    assert note.deleted and len(results(fake_tg, alice)) == 1
    press = fake_tg.press(alice, result, text="Upscale")        # its buttons work: it was remembered
    choices = fake_tg.wait_for(chat_id=alice.id, text="How shall I upscale", after=press)
    press = fake_tg.press(alice, choices, text="▶️ Upscale")
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=press, timeout=JOB_S)
    assert fake_tg.errors() == []


def test_a_result_that_never_gets_through_gets_an_apology_and_no_stuck_status(fake_tg, bot, alice):
    fake_tg.fail("sendPhoto", times=5, status=502)
    sent = ask_for_winter(fake_tg, alice)
    note = fake_tg.wait_for(chat_id=alice.id, text="couldn't send it", after=sent, timeout=JOB_S)
    assert STATUS.search(note.history[0]["text"]), "the status message itself says so"
    assert results(fake_tg, alice) == []
    press = fake_tg.press(alice, note, text="Send it again")
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=press, timeout=30)
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="nothing to cancel", after=sent)


@pytest.mark.parametrize("refusal", ["Bad Request: PHOTO_INVALID_DIMENSIONS", "Bad Request: IMAGE_PROCESS_FAILED"])
def test_a_refused_photo_goes_once_as_a_document(fake_tg, bot, alice, refusal):
    fake_tg.fail("sendPhoto", times=1, status=400, description=refusal)
    sent = ask_for_winter(fake_tg, alice)
    document = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert "Done" in document.caption
    fake_tg.wait_idle(quiet=0.5)
    assert len(fake_tg.calls("sendPhoto")) == 1 and len(results(fake_tg, alice)) == 1
    assert fake_tg.errors() == []


def test_an_html_413_page_for_a_photo_sends_it_once_as_a_document(fake_tg, bot, alice):
    fake_tg.fault("sendPhoto", "html_413")
    sent = ask_for_winter(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    fake_tg.wait_idle(quiet=0.5)
    assert len(fake_tg.calls("sendPhoto")) == 1 and len(results(fake_tg, alice)) == 1


def test_a_status_message_held_by_flood_control_does_not_hold_the_job(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/season")
    menu = fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent)
    press = fake_tg.press(alice, menu, text="Summer")
    fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
    fake_tg.fail("sendMessage", times=1, status=429, retry_after=30)   # the status message's turn
    sent = fake_tg.send_photo(alice, picture())
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert result.time - sent.time < 25, "nobody waited the 30 s out"
    fake_tg.wait_idle(quiet=0.5)
    assert not any("went wrong" in (m.text or "") for m in fake_tg.messages(alice.id))


def test_failing_chat_actions_do_not_stop_the_result(fake_tg, bot, alice):
    fake_tg.fault("sendChatAction", "drop", times=20)
    sent = ask_for_winter(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)


def test_uploads_get_a_timeout_sized_by_their_bytes():
    from bot.chat.results import upload_timeout
    assert upload_timeout(0) == 60
    assert 250 < upload_timeout(50 * 1024 * 1024) < 400

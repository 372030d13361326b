"""Flood control: progress edits are paced, and a 429 on one drops it and pauses edits, holding nothing up."""

from tests.bot.pictures import picture

JOB_S = 300


def start_quality_job(fake_tg, user):
    sent = fake_tg.send_text(user, "/style")
    ask = fake_tg.wait_for(chat_id=user.id, text="style picture", after=sent)
    fake_tg.press(user, ask, text="Quality")
    fake_tg.send_photo(user, picture(seed=9))
    return fake_tg.send_photo(user, picture((128, 96)))


def test_a_429_on_a_progress_edit_pauses_edits_and_holds_up_nothing(fake_tg, start_bot, alice):
    start_bot(QUALITY_STEPS="120")   # long enough for several edits on a fast CPU too
    fake_tg.set_flood_control()
    sent = start_quality_job(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    fake_tg.fail("editMessageText", times=1, status=429, retry_after=8)
    refused = fake_tg.wait_call("editMessageText", count=len(fake_tg.calls("editMessageText")) + 1, timeout=30)
    assert refused.status == 429

    # Meanwhile the bot answers at once: nothing sleeps on the 429.
    sent = fake_tg.send_text(alice, "/help")
    answer = fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=sent, timeout=5)
    assert answer.time - sent.time < 2.0

    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", timeout=JOB_S)
    edits = fake_tg.calls("editMessageText")
    later = [c for c in edits if c.time > refused.time]
    assert all(c.time - refused.time >= 7.9 for c in later), "no edit (nor a retry of it) within retry_after"
    assert all(c.time < result.time + 1 for c in later)
    times = [c.time for c in edits]
    assert all(b - a >= 2.9 for a, b in zip(times, times[1:])), "at most one edit every 3 seconds"
    # The rate model refused no edit: the pacing keeps under Telegram's limits. (A burst of the
    # user's own dialog may meet a 429 on a message; that one is waited out briefly and goes.)
    assert [c for c in fake_tg.errors() if c.method == "editMessageText"] == []

"""The bot in groups and forum topics, with privacy mode on and off."""
import pytest

from tests.bot.pictures import picture

JOB_S = 180
BOT = "stylebot_test_bot"


@pytest.fixture
def bob(fake_tg):
    return fake_tg.add_user(first_name="Bob")


def test_a_picture_dialog_in_a_forum_topic_with_privacy_mode_on(fake_tg, bot, alice):
    group = fake_tg.add_group("Artists", forum=True, topics=(7,))
    sent = fake_tg.send_text(alice, f"/season@{BOT}", chat=group, thread=7)
    menu = fake_tg.wait_for(chat_id=group.id, text="seasons", after=sent)
    assert menu.thread_id == 7
    press = fake_tg.press(alice, menu, text="Summer → winter")
    prompt = fake_tg.wait_for(chat_id=group.id, text="Reply to this message", after=press)
    assert prompt.thread_id == 7 and prompt.reply_markup == {"force_reply": True, "selective": True}
    assert prompt.text.startswith("Alice, ")          # a mention: her app opens the reply

    # With privacy mode on, only a reply reaches the bot: the prompt makes the picture one.
    sent = fake_tg.send_photo(alice, picture(), chat=group, thread=7, reply_to=prompt)
    result = fake_tg.wait_for(chat_id=group.id, kind="photo", after=sent, timeout=JOB_S)
    assert result.thread_id == 7 and "Done" in result.caption, "the result stays in the topic"
    fake_tg.wait_idle(quiet=0.5)
    assert all(m.thread_id == 7 for m in fake_tg.messages(group.id, include_deleted=True))
    assert fake_tg.errors() == []


def test_a_command_gets_its_prompt_as_a_selective_force_reply(fake_tg, bot, alice):
    group = fake_tg.add_group()
    sent = fake_tg.send_text(alice, f"/upscale@{BOT}", chat=group)
    prompt = fake_tg.wait_for(chat_id=group.id, text="Reply to this message", after=sent)
    assert prompt.reply_to == sent.message_id and prompt.reply_markup["selective"] is True
    sent = fake_tg.send_photo(alice, picture((40, 30)), chat=group, reply_to=prompt)
    fake_tg.wait_for(chat_id=group.id, kind="document", after=sent, timeout=JOB_S)


def test_what_is_not_meant_for_the_bot_gets_no_answer(fake_tg, bot, alice, bob):
    other_bot = fake_tg.add_user(first_name="Other", username="other_bot", is_bot=True)
    group = fake_tg.add_group(privacy=False)     # the bot sees everything here
    fake_tg.send_service(alice, group, new_chat_members=[bob])
    fake_tg.send_service(alice, group, new_chat_title="Renamed")
    fake_tg.send_text(alice, "/style@other_bot", chat=group)
    fake_tg.send_text(other_bot, "/style", chat=group)
    fake_tg.send_text(alice, "nice weather today", chat=group)
    fake_tg.send_photo(bob, picture(), chat=group)
    fake_tg.send_text(alice, "/nosuchcommand@other_bot", chat=group)
    fake_tg.wait_idle(quiet=1.0)
    assert fake_tg.messages(group.id) == []

    sent = fake_tg.send_text(alice, f"/help@{BOT}", chat=group)
    fake_tg.wait_for(chat_id=group.id, text="Here is what I can do", after=sent)
    assert fake_tg.errors() == []


def test_with_privacy_mode_off_a_member_in_a_dialog_may_send_the_picture_without_replying(fake_tg, bot, alice, bob):
    group = fake_tg.add_group(privacy=False)
    sent = fake_tg.send_text(alice, "/upscale", chat=group)
    fake_tg.wait_for(chat_id=group.id, text="Reply to this message", after=sent)
    fake_tg.send_photo(bob, picture(seed=3), chat=group)        # Bob is in no dialog: left alone
    sent = fake_tg.send_photo(alice, picture((40, 30)), chat=group)
    fake_tg.wait_for(chat_id=group.id, kind="document", after=sent, timeout=JOB_S)
    fake_tg.wait_idle(quiet=0.5)
    assert sum(m.kind == "document" for m in fake_tg.messages(group.id)) == 1
    assert not any("Nice picture" in (m.text or "") for m in fake_tg.messages(group.id))


def test_progress_in_groups_is_edited_at_most_every_six_seconds(fake_tg, start_bot, alice):
    start_bot(QUALITY_STEPS="400")   # long enough for several edits on a fast CPU too
    group = fake_tg.add_group(privacy=False)
    fake_tg.set_flood_control()
    sent = fake_tg.send_text(alice, "/style", chat=group)
    fake_tg.wait_for(chat_id=group.id, text="style picture", after=sent)
    ask = fake_tg.wait_for(chat_id=group.id, text="style picture")
    fake_tg.press(alice, ask, text="Quality")
    fake_tg.send_photo(alice, picture(seed=9), chat=group, reply_to=ask)
    sent = fake_tg.send_photo(alice, picture((256, 192)), chat=group)
    fake_tg.wait_for(chat_id=group.id, kind="photo", after=sent, timeout=300)
    times = [c.time for c in fake_tg.calls("editMessageText") if c.params.get("chat_id") == str(group.id)]
    assert len(times) >= 2
    assert all(b - a >= 5.9 for a, b in zip(times, times[1:]))
    assert [c for c in fake_tg.errors() if c.method == "editMessageText"] == []

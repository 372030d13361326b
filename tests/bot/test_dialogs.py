"""Every conversation of the bot, played by test users against the fake Bot API.

The bot runs as `python -m bot` with synthetic weights and MAX_SIDE=256
(tests/bot_harness.py), so the networks are real but their pictures are noise.
"""
import json
import re
import time

import pytest

from tests.bot.pictures import picture

ADMIN_ID = 777
JOB_S = 120   # a job's wait: two cores shared with other test runs, and the first job builds the engine
STATUS = re.compile("Starting|In the queue|Working|Painting")


@pytest.fixture
def presets_dir(tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "waves.png").write_bytes(picture((96, 64), "PNG", seed=1))
    (folder / "stars.jpg").write_bytes(picture((80, 80), "JPEG", seed=2))
    (folder / "presets.json").write_text(json.dumps([
        {"id": "wave", "file": "waves.png", "author": "Test Painter", "title": "Waves", "year": 1831},
        {"file": "stars.jpg", "author": "Another Painter", "title": "Stars", "year": "c. 1889"},
        {"file": "missing.jpg", "author": "Nobody", "title": "Gone", "year": 1900},
    ]))
    return folder


@pytest.fixture
def bot_env(fake_tg, presets_dir):
    fake_tg.add_user(id=ADMIN_ID, first_name="Admin")
    return {"PRESETS_DIR": str(presets_dir), "ADMIN_CHAT_ID": str(ADMIN_ID)}


@pytest.fixture
def alice(fake_tg):
    return fake_tg.add_user(first_name="Alice", username="alice_w", language_code="en")


def result_of(fake_tg, user, after, kind="photo", timeout=JOB_S):
    return fake_tg.wait_for(chat_id=user.id, kind=kind, after=after, timeout=timeout)


def eventually(condition, timeout=5.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def texts(fake_tg, user, after=0):
    since = getattr(after, "seq", after)
    return [m.text or m.caption or "" for m in fake_tg.messages(user.id) if m.seq > since]


def test_start_greets_with_buttons_and_help_names_every_command(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/start")
    greeting = fake_tg.wait_for(chat_id=alice.id, text="Hi, Alice", after=sent)
    labels = " ".join(b["text"] for b in greeting.buttons)
    for word in ("style", "paintings", "winter", "Upscale", "Language", "Help"):
        assert word in labels

    press = fake_tg.press(alice, greeting, text="Help")
    assert press.answer() is not None
    help_message = fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=press)
    for command in ("/style", "/presets", "/season", "/upscale", "/cancel", "/reset", "/lang", "/feedback", "/help"):
        assert command in help_message.text
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=sent)
    assert fake_tg.commands, "the command menu is published with setMyCommands"
    assert fake_tg.errors() == []


def test_style_with_defaults_starts_once_both_pictures_are_in(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    assert "✅ ⚡ Fast" in [b["text"] for b in ask.buttons]

    sent = fake_tg.send_photo(alice, picture(seed=3))
    fake_tg.wait_for(chat_id=alice.id, text="Now send the photo", after=sent)
    sent = fake_tg.send_photo(alice, picture((300, 200)))
    status = fake_tg.wait_for(chat_id=alice.id, text=STATUS, after=sent)
    result = result_of(fake_tg, alice, sent)
    assert "Done" in result.caption
    assert max(result.image().size) <= 256 and result.image().size[0] > result.image().size[1]
    assert {"Upscale this", "Try another style", "Start over"} <= {b["text"][2:] for b in result.buttons}
    assert eventually(lambda: status.deleted), "the status message goes once the result is there"
    assert any(chat == alice.id for _, chat, _ in fake_tg.chat_actions)
    assert fake_tg.errors() == []


def test_style_options_by_buttons_and_quality_progress(fake_tg, start_bot, alice):
    start_bot(QUALITY_STEPS="20")
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    for label in ("Quality", "50%", "colours"):
        press = fake_tg.press(alice, ask, text=label)
        assert press.answer()["text"]
        ask = fake_tg.wait_for(lambda m: m is ask, after=press)
    ticked = [b["text"] for b in ask.buttons if b["text"].startswith("✅")]
    assert len(ticked) == 3 and any("Quality" in t for t in ticked) and "✅ 50%" in ticked

    fake_tg.send_photo(alice, picture(seed=4))
    sent = fake_tg.send_photo(alice, picture((128, 96)))
    result = result_of(fake_tg, alice, sent, timeout=300)
    assert "Done" in result.caption
    status = [m for m in fake_tg.messages(alice.id, include_deleted=True)
              if m.kind == "text" and STATUS.search(m.history[0]["text"])]
    shown = [h["text"] for m in status for h in m.history]
    assert any("%" in s for s in shown), f"quality mode shows progress: {shown}"
    assert len(status) == 1, "one status message, edited as the job advances"
    times = [h["time"] for h in status[0].history]
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:])), "at most about one edit a second"


def test_presets_list_paintings_and_painters(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    labels = [b["text"] for b in menu.buttons]
    assert "Test Painter — Waves (1831)" in labels and "Another Painter — Stars (c. 1889)" in labels
    assert not any("Gone" in label for label in labels), "an entry whose file is missing is skipped"
    for painter in ("Monet", "van Gogh", "Cézanne", "Ukiyo-e"):
        assert any(painter in label for label in labels)

    press = fake_tg.press(alice, menu, text="Waves")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture())
    assert "Done" in result_of(fake_tg, alice, sent).caption

    press = fake_tg.press(alice, menu, text="van Gogh")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the photo", after=press)
    sent = fake_tg.send_photo(alice, picture(seed=5))
    assert "Done" in result_of(fake_tg, alice, sent).caption
    assert fake_tg.errors() == []


def test_season_both_ways(fake_tg, bot, alice):
    for label in ("Summer → winter", "Winter → summer"):
        sent = fake_tg.send_text(alice, "/season")
        menu = fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent)
        press = fake_tg.press(alice, menu, text=label)
        fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
        sent = fake_tg.send_photo(alice, picture())
        assert result_of(fake_tg, alice, sent).image().size == (160, 120)


def test_upscale_comes_as_a_document_and_says_when_it_is_less_than_4x(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/upscale")
    ask = fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    assert {"✅ 📷 Photo", "✅ ×4", "✅ medium"} <= {b["text"] for b in ask.buttons}, "today's defaults, ticked"
    sent = fake_tg.send_photo(alice, picture((60, 40)))
    small = result_of(fake_tg, alice, sent, kind="document")
    assert small.image().size == (240, 160) and small.image().format == "PNG"
    assert "×4" in small.caption and "60×40 → 240×160" in small.caption

    # MAX_SIDE is 256 in the tests: a 400x300 input is shrunk first, so the result is 1024x768.
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_document(alice, picture((400, 300), "PNG"), "big.png", "image/png")
    big = result_of(fake_tg, alice, sent, kind="document")
    assert big.image().size == (1024, 768)
    assert "rather than ×4" in big.caption and "size limit" in big.caption
    assert fake_tg.errors() == []


def test_buttons_under_a_result(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/season")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent), text="Summer")
    fake_tg.wait_for(chat_id=alice.id, text="photo", after=press)
    sent = fake_tg.send_photo(alice, picture((400, 300)))
    result = result_of(fake_tg, alice, sent)
    assert result.image().size == (256, 192)     # MAX_SIDE is 256 in the tests

    press = fake_tg.press(alice, result, text="Upscale this")
    choices = fake_tg.wait_for(chat_id=alice.id, text="How shall I upscale", after=press)
    press = fake_tg.press(alice, choices, text="▶️ Upscale")
    upscaled = result_of(fake_tg, alice, press, kind="document")
    assert upscaled.image().size == (1024, 768) and "256×192 → 1024×768" in upscaled.caption
    assert not any(b["text"].endswith("Upscale this") for b in upscaled.buttons)

    press = fake_tg.press(alice, result, text="Try another style")
    menu = fake_tg.wait_for(chat_id=alice.id, text="this time", after=press)
    press = fake_tg.press(alice, menu, text="Upscale")
    choices = fake_tg.wait_for(chat_id=alice.id, text="How shall I upscale", after=press)
    press = fake_tg.press(alice, choices, text="▶️ Upscale")
    again = result_of(fake_tg, alice, press, kind="document")
    assert "400×300 → 1024×768" in again.caption, "another operation starts from the user's own picture"

    press = fake_tg.press(alice, result, text="Start over")
    fake_tg.wait_for(chat_id=alice.id, text="Hi, Alice", after=press)


def test_cancel_during_a_job_and_nothing_arrives_after(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    fake_tg.press(alice, ask, text="Quality")
    fake_tg.send_photo(alice, picture(seed=6))
    sent = fake_tg.send_photo(alice, picture((200, 200)))
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("Painting|Working"), after=sent, timeout=JOB_S)

    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="Cancelled. I stopped working", after=sent)
    mark = fake_tg.mark()
    time.sleep(6)
    assert texts(fake_tg, alice, mark) == [], "nothing of the cancelled job arrives"
    assert not any(m.kind == "photo" for m in fake_tg.messages(alice.id))

    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="nothing to cancel", after=sent)
    # The worker is free again: the next job runs.
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((50, 50)))
    result_of(fake_tg, alice, sent, kind="document")


def test_cancel_leaves_a_dialog(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="Cancelled", after=sent)
    sent = fake_tg.send_photo(alice, picture())
    fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)


def test_lang_switches_every_later_reply_and_reset_forgets_it(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/lang")
    menu = fake_tg.wait_for(chat_id=alice.id, text="language", after=sent)
    press = fake_tg.press(alice, menu, text="Русский")
    assert "по-русски" in press.answer()["text"]
    fake_tg.wait_for(chat_id=alice.id, text="по-русски", after=press)

    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Вот что я умею", after=sent)
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="картинку-стиль", after=sent)
    assert any("Быстро" in b["text"] for b in ask.buttons)
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="Отменено", after=sent)
    sent = fake_tg.send_text(alice, "/season")
    press = fake_tg.press(alice, fake_tg.wait_for(chat_id=alice.id, text="времена года", after=sent),
                          text="Лето")
    fake_tg.wait_for(chat_id=alice.id, text="летнее фото", after=press)
    sent = fake_tg.send_photo(alice, picture())
    assert "Готово" in result_of(fake_tg, alice, sent).caption

    sent = fake_tg.send_text(alice, "/reset")
    fake_tg.wait_for(chat_id=alice.id, text="forgotten everything", after=sent)
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", after=sent)


def test_russian_telegram_app_gets_russian_by_default(fake_tg, bot):
    boris = fake_tg.add_user(first_name="Борис", language_code="ru")
    sent = fake_tg.send_text(boris, "/start")
    fake_tg.wait_for(chat_id=boris.id, text="Привет, Борис", after=sent)
    sent = fake_tg.send_text(boris, "/nonsense")
    fake_tg.wait_for(chat_id=boris.id, text="не знаю такой команды", after=sent)


def test_reset_forgets_pictures_and_dialog(fake_tg, bot, alice):
    sent = fake_tg.send_photo(alice, picture())
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    sent = fake_tg.send_text(alice, "/reset")
    fake_tg.wait_for(chat_id=alice.id, text="forgotten everything", after=sent)
    press = fake_tg.press(alice, menu, text="Upscale")
    # The kept picture is gone, so the bot asks for one instead of upscaling the old one.
    fake_tg.wait_for(chat_id=alice.id, text="Send me the picture to upscale", after=press)


def test_feedback_reaches_the_admin_without_the_author(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/feedback")
    fake_tg.wait_for(chat_id=alice.id, text="Write your message", after=sent)
    sent = fake_tg.send_text(alice, "Lovely bot, but winter looks grey.")
    fake_tg.wait_for(chat_id=alice.id, text="Thank you", after=sent)
    copy = fake_tg.wait_for(chat_id=ADMIN_ID, text="Lovely bot, but winter looks grey.")
    shown = json.dumps([copy.text, copy.caption, copy.entities, copy.reply_markup], ensure_ascii=False)
    assert "Alice" not in shown and "alice_w" not in shown and str(alice.id) not in shown
    assert not fake_tg.calls("forwardMessage")

    sent = fake_tg.send_text(alice, "/feedback")
    fake_tg.wait_for(chat_id=alice.id, text="Write your message", after=sent)
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="Cancelled", after=sent)
    sent = fake_tg.send_text(alice, "this is not feedback")
    fake_tg.wait_for(chat_id=alice.id, text="I work with pictures", after=sent)
    assert len(fake_tg.messages(ADMIN_ID)) == 1


def test_feedback_is_off_without_an_admin_chat(fake_tg, start_bot, alice):
    start_bot(ADMIN_CHAT_ID="")
    sent = fake_tg.send_text(alice, "/feedback")
    fake_tg.wait_for(chat_id=alice.id, text="Feedback is switched off", after=sent)


def test_a_picture_with_no_operation_is_kept_and_operations_offered(fake_tg, bot, alice):
    sent = fake_tg.send_photo(alice, picture((100, 80)))
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    labels = " ".join(b["text"] for b in menu.buttons)
    assert "famous painting" in labels and "Summer" in labels and "Upscale" in labels

    press = fake_tg.press(alice, menu, text="famous painting")
    presets = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=press)
    press = fake_tg.press(alice, presets, text="Monet")
    assert "Done" in result_of(fake_tg, alice, press).caption, "the kept picture is used: no second ask"

    sent = fake_tg.send_photo(alice, picture((100, 80), seed=7))
    menu = fake_tg.wait_for(chat_id=alice.id, text="What shall I do", after=sent)
    press = fake_tg.press(alice, menu, text="style I'll send")
    fake_tg.wait_for(chat_id=alice.id, text="Now send me the style picture", after=press)
    sent = fake_tg.send_photo(alice, picture(seed=8))
    assert result_of(fake_tg, alice, sent).image().size == (100, 80), "the kept picture is the content"


def test_text_where_a_picture_is_expected_gets_a_reminder(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    sent = fake_tg.send_text(alice, "hello?")
    fake_tg.wait_for(chat_id=alice.id, text="waiting for the style picture", after=sent)
    fake_tg.send_photo(alice, picture())
    sent = fake_tg.send_text(alice, "and now?")
    fake_tg.wait_for(chat_id=alice.id, text="waiting for the photo to paint", after=sent)

    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="picture to upscale", after=sent)
    sent = fake_tg.send_text(alice, "where?")
    fake_tg.wait_for(chat_id=alice.id, text="waiting for the picture to upscale", after=sent)


def test_unknown_command_and_plain_text_get_answers(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/frobnicate")
    fake_tg.wait_for(chat_id=alice.id, text="don't know that command", after=sent)
    sent = fake_tg.send_text(alice, "hi there")
    fake_tg.wait_for(chat_id=alice.id, text="I work with pictures", after=sent)


def test_stale_and_unknown_buttons_are_answered(fake_tg, bot, alice):
    sent = fake_tg.send_text(alice, "/style")
    ask = fake_tg.wait_for(chat_id=alice.id, text="style picture", after=sent)
    sent = fake_tg.send_text(alice, "/cancel")
    fake_tg.wait_for(chat_id=alice.id, text="Cancelled", after=sent)
    press = fake_tg.press(alice, ask, text="Quality")          # the dialog it belonged to is over
    assert "expired" in press.answer()["text"]

    sent = fake_tg.send_text(alice, "/presets")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Pick a painting", after=sent)
    # A button from an older keyboard whose data the bot no longer knows.
    query = fake_tg.push_update({"callback_query": {
        "id": "991", "from": alice.to_json(), "chat_instance": "1",
        "message": {"message_id": menu.message_id, "date": menu.date, "chat": alice.chat_json(),
                    "from": fake_tg.bot_user, "text": menu.text},
        "data": "preset:painting:renamed"}})
    assert query
    fake_tg.push_update({"callback_query": {
        "id": "992", "from": alice.to_json(), "chat_instance": "1",
        "message": {"message_id": menu.message_id, "date": menu.date, "chat": alice.chat_json(),
                    "from": fake_tg.bot_user, "text": menu.text},
        "data": "from-an-old-version:42"}})
    answers = {}
    end = time.monotonic() + 10
    while len(answers) < 3 and time.monotonic() < end:
        for call in fake_tg.calls("answerCallbackQuery"):
            answers.setdefault(call.params["callback_query_id"], call.params.get("text", ""))
        time.sleep(0.05)
    # The fake refuses answers to queries it did not make itself; what the bot meant to say counts.
    assert "no longer available" in answers["991"] and "expired" in answers["992"]


def test_webhook_mode_checks_telegrams_secret_header(fake_tg, weights_dir, tmp_path, alice):
    import socket
    import urllib.error
    import urllib.request

    from tests.bot_harness import BotProcess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/hook/telegram"
    # Telegram itself takes only https on 80, 88, 443 or 8443; a Local Bot API server takes this.
    fake_tg.local = True
    bot = BotProcess(fake_tg, weights_dir=weights_dir, log_path=tmp_path / "webhook.log",
                     env_overrides={"WEBHOOK_URL": url, "WEBHOOK_SECRET": "s3cret-token", "PORT": str(port),
                                    "TELEGRAM_API_LOCAL": "1"})
    with bot:
        registered = fake_tg.wait_call("setWebhook", timeout=60)
        assert registered.params["url"] == url and registered.params["secret_token"] == "s3cret-token"

        update = {"update_id": 1, "message": {
            "message_id": 1, "date": int(time.time()), "chat": alice.chat_json(), "from": alice.to_json(),
            "text": "/help", "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}

        def post(secret: str) -> int:
            request = urllib.request.Request(url, data=json.dumps(update).encode(), method="POST", headers={
                "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as e:
                return e.code

        end = time.monotonic() + 30
        while True:   # the server starts listening a moment after setWebhook
            try:
                status = post("wrong")
                break
            except urllib.error.URLError:
                assert time.monotonic() < end, bot.log
                time.sleep(0.2)
        assert status == 401
        assert post("s3cret-token") == 200
        fake_tg.wait_for(chat_id=alice.id, text="Here is what I can do", timeout=10)
        assert len(fake_tg.messages(alice.id)) == 1, "the update with the wrong secret was ignored"
        assert not fake_tg.calls("getUpdates")
    assert bot.returncode == 0
    bot.assert_token_not_logged()

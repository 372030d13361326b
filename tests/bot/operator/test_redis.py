"""State in a real Redis: what survives a restart, a SIGKILL, and Redis itself going away.

Each test starts its own redis-server (tests/redis_server.py) on a free port
in a temporary folder, and skips with the reason where none can start.
"""
import asyncio
import json
import os
import re
import signal
import time

import pytest
from aiogram.fsm.storage.base import StorageKey

from bot.operator.redis_link import RedisLink
from bot.operator.storage import ResilientStorage
from tests.bot.pictures import picture
from tests.bot.test_dialogs import eventually

ADMIN_ID = 777
JOB_S = 120
STATUS = re.compile("Starting|In the queue|Working|Painting|Запуск|В очереди|Работаю|Рисую")


@pytest.fixture
def bot_env(fake_tg, redis_server):
    fake_tg.add_user(id=ADMIN_ID, first_name="Admin")
    return {"REDIS_URL": redis_server.url, "ADMIN_CHAT_ID": str(ADMIN_ID)}


def refused_calls(fake_tg):
    """Bot API calls refused, less the 409 that ends a stopped bot's last long poll once
    the restarted bot polls (the server held it open, as Telegram does)."""
    return [c for c in fake_tg.errors() if not (c.method == "getUpdates" and c.status == 409)]


def choose_russian(fake_tg, user):
    sent = fake_tg.send_text(user, "/lang")
    menu = fake_tg.wait_for(chat_id=user.id, text="Choose the language", after=sent)
    press = fake_tg.press(user, menu, text="Русский")
    fake_tg.wait_for(chat_id=user.id, text="по-русски", after=press)


def wait_log(process, text, timeout=15.0, times=1):
    """Wait until text is in the log `times` times."""
    end = time.monotonic() + timeout
    while process.log.count(text) < times:
        assert time.monotonic() < end, f"{text!r} not in the log:\n{process.log[-3000:]}"
        time.sleep(0.1)


def test_language_and_dialog_survive_a_restart(fake_tg, start_bot, redis_server):
    alice = fake_tg.add_user(first_name="Alice", language_code="en")
    bot = start_bot()
    choose_russian(fake_tg, alice)
    sent = fake_tg.send_text(alice, "/upscale")      # the upscale choices are kept in the profile too
    menu = fake_tg.wait_for(chat_id=alice.id, text="Пришлите картинку для увеличения", after=sent)
    for label in ("Рисунок", "×3"):
        press = fake_tg.press(alice, menu, text=label)
        fake_tg.wait_for(lambda m: m is menu and any(b["text"].startswith("✅") and label in b["text"]
                                                     for b in m.buttons), chat_id=alice.id, after=press)
    sent = fake_tg.send_text(alice, "/style")
    fake_tg.wait_for(chat_id=alice.id, text="картинку-стиль", after=sent)

    code, _ = bot.stop()
    assert code == 0
    start_bot()

    # The dialog goes on where it was (waiting for the style picture), in Russian.
    sent = fake_tg.send_photo(alice, picture((96, 64), seed=3))
    fake_tg.wait_for(chat_id=alice.id, text="Стиль есть", after=sent)
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Вот что я умею", after=sent)
    sent = fake_tg.send_text(alice, "/upscale")
    menu = fake_tg.wait_for(chat_id=alice.id, text="Пришлите картинку для увеличения", after=sent)
    assert {"✅ 🎌 Рисунок / аниме", "✅ ×3"} <= {b["text"] for b in menu.buttons}
    # Only ids and state: no picture bytes in Redis.
    for key in redis_server.command("KEYS", "*"):
        assert len(redis_server.command("DUMP", key)) < 4000, key
    assert refused_calls(fake_tg) == []


def test_a_job_lost_to_sigkill_is_announced_after_the_restart(fake_tg, start_bot, redis_server):
    boris = fake_tg.add_user(first_name="Boris", language_code="ru")
    # A quality job of many steps: still running when the kill comes, however fast the CPU.
    bot = start_bot(QUALITY_STEPS="300")
    sent = fake_tg.send_text(boris, "/style")
    ask = fake_tg.wait_for(lambda m: any("💎" in b["text"] for b in m.buttons), chat_id=boris.id, after=sent)
    fake_tg.press(boris, ask, text=next(b["text"] for b in ask.buttons if "💎" in b["text"]))
    fake_tg.send_photo(boris, picture(seed=9))
    sent = fake_tg.send_photo(boris, picture((160, 120), seed=4))
    status = fake_tg.wait_for(chat_id=boris.id, text=STATUS, after=sent, timeout=30)
    # Recorded before the status message went out; the status message's id follows a moment later.
    records = redis_server.command("HVALS", "stylebot:jobs")
    assert len(records) == 1 and json.loads(records[0])["op"] == "stylize_quality"
    assert eventually(lambda: [json.loads(r)["status_message_id"] for r in redis_server.command(
        "HVALS", "stylebot:jobs")] == [status.message_id])

    os.killpg(bot.proc.pid, signal.SIGKILL)     # the bot and its worker, as the OOM killer or docker kill would
    bot.proc.wait(10)
    mark = fake_tg.mark()
    bot = start_bot()

    sorry = fake_tg.wait_for(chat_id=boris.id, text="отправьте картинку ещё раз", after=mark, timeout=20)
    assert sorry.reply_to == status.message_id
    assert redis_server.command("HLEN", "stylebot:jobs") == 0
    # Told once: another restart says nothing more. (Stopped first: two bots polling one token would
    # take each other's updates, and the next one's readiness could not be told from this one's polls.)
    bot.stop()
    start_bot()
    time.sleep(1)
    assert sum("ещё раз" in (m.text or "") for m in fake_tg.messages(boris.id)) == 1


def test_redis_away_then_back_while_users_talk(fake_tg, start_bot, redis_server):
    alice = fake_tg.add_user(first_name="Alice", language_code="en")
    bot = start_bot()
    choose_russian(fake_tg, alice)

    # Frozen: connections hang. Answers still come, within the timeouts, not after them.
    redis_server.freeze()
    started = time.monotonic()
    sent = fake_tg.send_text(alice, "/start")
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("Hi, Alice|Привет, Alice"), after=sent, timeout=10)
    assert time.monotonic() - started < 6
    wait_log(bot, "Redis is not answering")
    redis_server.thaw()
    wait_log(bot, "Redis is back; state is kept there again")

    # Gone: the port refuses. The bot keeps talking (in memory, so in the Telegram app's language).
    redis_server.stop()
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("Here is what I can do|Вот что я умею"), after=sent)
    sent = fake_tg.send_text(alice, "/upscale")     # a dialog begun while Redis is away
    fake_tg.wait_for(chat_id=alice.id, text=re.compile("upscale|увеличения"), after=sent)

    redis_server.start()
    wait_log(bot, "Redis is back; state is kept there again", timeout=20, times=2)
    # The language chosen before is still there, and the dialog begun meanwhile was written back.
    sent = fake_tg.send_text(alice, "/help")
    fake_tg.wait_for(chat_id=alice.id, text="Вот что я умею", after=sent)
    state = redis_server.command("GET", f"stylebot:{alice.id}:{alice.id}:default:state")
    assert state == b"UpscaleDialog:waiting_picture"
    assert refused_calls(fake_tg) == []


def test_hourly_limit_and_stats_that_outlive_a_restart(fake_tg, start_bot, redis_server):
    alice = fake_tg.add_user(first_name="Alice", language_code="en")
    admin = fake_tg._users[ADMIN_ID]
    bot = start_bot(JOBS_PER_HOUR="1")

    sent = fake_tg.send_text(alice, "/season")
    menu = fake_tg.wait_for(chat_id=alice.id, text="seasons turn", after=sent)
    press = fake_tg.press(alice, menu, text="Summer → winter")
    fake_tg.wait_for(chat_id=alice.id, text="summer photo", after=press)
    sent = fake_tg.send_photo(alice, picture((64, 48), seed=5))
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)

    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((64, 48), seed=6))
    refusal = fake_tg.wait_for(chat_id=alice.id, text="That's 1 picture this hour, as many as I paint for one person", after=sent)
    assert re.search(r"go on in (59|60) minutes", refusal.text), refusal.text

    # The operator is never limited.
    for seed in (7, 8):
        sent = fake_tg.send_text(admin, "/upscale")
        fake_tg.wait_for(chat_id=ADMIN_ID, text="upscale", after=sent)
        sent = fake_tg.send_photo(admin, picture((48, 32), seed=seed))
        fake_tg.wait_for(chat_id=ADMIN_ID, kind="document", after=sent, timeout=JOB_S)

    sent = fake_tg.send_text(alice, "/stats")
    fake_tg.wait_for(chat_id=alice.id, text="I don't know that command", after=sent)

    def stats_text():
        sent = fake_tg.send_text(admin, "/stats")
        return fake_tg.wait_for(chat_id=ADMIN_ID, text="Up for", after=sent).text

    text = stats_text()
    assert "translate: 1 / 0 / 0 / 0" in text, text
    assert "upscale: 2 / 0 / 0 / 1" in text, text
    assert re.search(r"Workers alive: 1 of 1", text), text
    assert re.search(r"Memory: bot \d+ MB, workers \d+ MB", text), text
    assert re.search(r"Engine: cpu, (fp32|bf16|float32|bfloat16)", text), text
    assert "Queue: 0 waiting" in text, text

    time.sleep(2.5)      # the counters reach Redis a moment after a change
    assert bot.stop()[0] == 0
    start_bot()
    text = stats_text()
    assert "translate: 1 / 0 / 0 / 0" in text and "upscale: 2 / 0 / 0 / 1" in text, text
    assert refused_calls(fake_tg) == []


def test_a_bot_that_starts_before_redis_catches_up_when_it_comes(fake_tg, start_bot, redis_server):
    """As after a host reboot: the bot is up before Redis is; lost jobs are announced once it answers."""
    carla = fake_tg.add_user(first_name="Carla", language_code="en")
    bot = start_bot()
    sent = fake_tg.send_text(carla, "/upscale")
    fake_tg.wait_for(chat_id=carla.id, text="upscale", after=sent)
    sent = fake_tg.send_photo(carla, picture((160, 120), seed=9))
    fake_tg.wait_for(chat_id=carla.id, text=STATUS, after=sent)
    os.killpg(bot.proc.pid, signal.SIGKILL)
    bot.proc.wait(10)

    redis_server.stop()
    mark = fake_tg.mark()
    bot = start_bot()
    sent = fake_tg.send_text(carla, "/help")
    fake_tg.wait_for(chat_id=carla.id, text="Here is what I can do", after=sent)
    assert not any("send the picture again" in (m.text or "") for m in fake_tg.messages(carla.id))

    redis_server.start()
    fake_tg.wait_for(chat_id=carla.id, text="send the picture again", after=mark, timeout=20)
    wait_log(bot, "Redis is back; state is kept there again")
    assert redis_server.command("HLEN", "stylebot:jobs") == 0
    assert refused_calls(fake_tg) == []


def test_what_changed_while_redis_was_away_is_written_back(redis_server):
    """The storage alone: a profile merged (the language stays), a dialog replaced, a /reset kept."""
    asyncio.run(write_back_round(redis_server))


async def write_back_round(server):
    link = RedisLink(server.url, probe_interval=0.2)
    storage = ResilientStorage(link)
    profile = StorageKey(bot_id=1, chat_id=5, user_id=5, destiny="profile")
    dialog = StorageKey(bot_id=1, chat_id=5, user_id=5)
    other = StorageKey(bot_id=1, chat_id=6, user_id=6, destiny="profile")
    await storage.set_data(profile, {"locale": "ru"})
    await storage.set_state(dialog, "StyleDialog:waiting_style")
    await storage.set_data(dialog, {"options": {"mode": "lite"}})
    await storage.set_data(other, {"locale": "ru"})

    server.stop()
    await storage.set_data(profile, {"results": {"job": {"result": {"file_id": "F", "unique_id": "U"}}}})
    await storage.set_state(dialog, "UpscaleDialog:waiting_picture")
    await storage.set_data(dialog, {})
    await storage.set_data(other, {})                      # /reset while Redis was away
    assert not link.up
    assert await storage.get_state(dialog) == "UpscaleDialog:waiting_picture"   # from memory meanwhile

    server.start()
    for _ in range(100):
        if link.up:
            break
        await asyncio.sleep(0.1)
    assert link.up
    assert await storage.get_data(profile) == {"locale": "ru", "results": {"job": {"result": {"file_id": "F",
                                                                                             "unique_id": "U"}}}}
    assert await storage.get_state(dialog) == "UpscaleDialog:waiting_picture"
    assert await storage.get_data(dialog) == {}
    assert await storage.get_data(other) == {}
    assert server.command("TTL", "stylebot:5:5:default:state") > 0       # dialogs expire, profiles do not
    assert server.command("TTL", "stylebot:5:5:profile:data") == -1
    await link.close()

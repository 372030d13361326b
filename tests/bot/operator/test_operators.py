"""The operator's side without Redis: who may use the bot, the health check, the settings."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bot.settings import DEFAULT_JOBS_PER_HOUR, SettingsError, load_settings
from tests.bot.pictures import picture
from tests.bot_harness import ROOT

ADMIN_ID = 777
TOKEN = "123456:" + "A" * 30


def settings(**env):
    return load_settings({"BOT_TOKEN": TOKEN, **env}, env_file=None)


def test_settings_read_the_operator_variables():
    s = settings(ALLOWED_USERS="12345, @Alice_W bob  -100", REDIS_URL="redis://redis:6379/0", JOBS_PER_HOUR="0")
    assert s.allowed_users == {12345, "alice_w", "bob", -100}
    assert s.redis_url == "redis://redis:6379/0" and s.jobs_per_hour == 0
    plain = settings()
    assert plain.allowed_users is None and plain.redis_url is None
    assert plain.jobs_per_hour == DEFAULT_JOBS_PER_HOUR > 0
    with pytest.raises(SettingsError, match="ALLOWED_USERS"):
        settings(ALLOWED_USERS="alice, bad-name!")
    with pytest.raises(SettingsError, match="REDIS_URL") as error:
        settings(REDIS_URL="http://user:secret@host")
    assert "secret" not in str(error.value)
    with pytest.raises(SettingsError, match="JOBS_PER_HOUR"):
        settings(JOBS_PER_HOUR="-1")


class TestAllowList:
    @pytest.fixture
    def bot_env(self, fake_tg, tmp_path):
        fake_tg.add_user(id=ADMIN_ID, first_name="Admin")
        friend = fake_tg.add_user(first_name="Fred", username="fred_k")
        return {"ALLOWED_USERS": f"@Alice_W, {friend.id}", "ADMIN_CHAT_ID": str(ADMIN_ID)}

    def test_strangers_get_one_polite_refusal_and_nothing_else(self, fake_tg, bot):
        alice = fake_tg.add_user(first_name="Alice", username="alice_w")
        fred = next(u for u in fake_tg._users.values() if u.username == "fred_k")
        admin = fake_tg._users[ADMIN_ID]
        eve = fake_tg.add_user(first_name="Eve", username="eve", language_code="ru")

        for user in (alice, fred, admin):
            sent = fake_tg.send_text(user, "/start")
            fake_tg.wait_for(chat_id=user.id, text="Hi, ", after=sent)

        first = fake_tg.send_text(eve, "/start")
        refusal = fake_tg.wait_for(chat_id=eve.id, text="закрытый бот", after=first)
        fake_tg.send_text(eve, "/help")
        fake_tg.send_photo(eve, picture((64, 48)))
        fake_tg.send_text(eve, "/upscale")
        fake_tg.wait_idle()
        assert [m.message_id for m in fake_tg.messages(eve.id)] == [refusal.message_id]
        assert not fake_tg.calls("getFile"), "a stranger's picture is never downloaded"
        assert fake_tg.errors() == []


def test_the_health_check_fails_when_the_event_loop_stops(fake_tg, start_bot, tmp_path):
    heartbeat = tmp_path / "heartbeat"
    bot = start_bot(HEARTBEAT_FILE=str(heartbeat))

    def health(max_age="4"):
        return subprocess.run([sys.executable, "-m", "bot.operator.health", "--file", str(heartbeat), "--max-age", max_age],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)

    end = time.monotonic() + 90      # the job worker needs a moment to start
    while (check := health()).returncode != 0:
        assert time.monotonic() < end, check.stderr
        time.sleep(0.5)

    os.kill(bot.proc.pid, signal.SIGSTOP)   # the loop no longer runs; the worker still lives
    try:
        time.sleep(5)
        check = health()
        assert check.returncode == 1 and "event loop" in check.stderr, check.stderr
    finally:
        os.kill(bot.proc.pid, signal.SIGCONT)
    end = time.monotonic() + 10
    while (check := health()).returncode != 0:
        assert time.monotonic() < end, check.stderr
        time.sleep(0.5)

    code, _ = bot.stop()
    assert code == 0
    assert not heartbeat.exists(), "a clean stop takes the heartbeat away"
    assert "no heartbeat" in health().stderr

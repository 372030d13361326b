"""Webhook rules as Telegram has them, and a Local Bot API server (TELEGRAM_API_LOCAL=1) that lifts them."""
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings
from tests.bot.pictures import picture
from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "123456789:AAFakeTokenForTests_abcdefghijkl"


def settings(**env):
    return load_settings({"BOT_TOKEN": TOKEN, **env}, env_file=None)


@pytest.mark.parametrize("url", ["http://bot.example.org/hook", "https://bot.example.org:8080/hook",
                                 "https://bot.example.org:22/hook"])
def test_webhooks_telegram_would_refuse_are_refused_in_one_line(url):
    with pytest.raises(SettingsError) as e:
        settings(WEBHOOK_URL=url)
    assert "https on port 80, 88, 443 or 8443" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("url", ["https://bot.example.org/hook", "https://bot.example.org:8443/hook",
                                 "https://bot.example.org:88/hook", "https://bot.example.org:80/hook"])
def test_webhooks_on_telegrams_ports_are_taken(url):
    assert settings(WEBHOOK_URL=url).webhook_url == url


def test_a_local_bot_api_server_takes_any_webhook():
    s = settings(WEBHOOK_URL="http://10.0.0.5:8080/hook", TELEGRAM_API_LOCAL="1",
                 TELEGRAM_API_URL="http://bot-api:8081")
    assert s.telegram_api_local and s.webhook_url == "http://10.0.0.5:8080/hook"
    assert not settings().telegram_api_local
    with pytest.raises(SettingsError, match="TELEGRAM_API_LOCAL must be 1 or 0"):
        settings(TELEGRAM_API_LOCAL="maybe")


def test_python_m_bot_exits_2_on_an_http_webhook(tmp_path):
    env = {"BOT_TOKEN": TOKEN, "WEBHOOK_URL": "http://bot.example.org/hook", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WEBHOOK_URL must be https" in lines[0], done.stderr


@pytest.fixture
def fake_tg():
    with FakeTelegram(local=True) as server:
        yield server


def test_with_a_local_server_files_over_20_mb_are_read_from_its_disk(fake_tg, start_bot):
    start_bot(TELEGRAM_API_LOCAL="1")
    alice = fake_tg.add_user(first_name="Alice")
    big = picture((160, 120)) + b"\0" * (21 * 1024 * 1024)     # a JPEG with a long tail: 21 MB
    sent = fake_tg.send_document(alice, big, "big.jpg", "image/jpeg")
    fake_tg.wait_for(chat_id=alice.id, text="Nice picture", after=sent, timeout=30)
    assert fake_tg.calls("getFile") and fake_tg.downloads == [], "read from the server's disk, not over HTTP"
    assert fake_tg.errors() == []

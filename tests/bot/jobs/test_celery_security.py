"""JOB_BACKEND=celery over Redis as it is run in the open: TLS with a verified CA, passwords, and a
Redis ACL that gives the workers the job keys and nothing of the users' dialogs (README, "More
machines"); and a worker host that cannot use Redis says so in one line and exits non-zero.
"""
import os
import subprocess
import sys
import time

import pytest
import redis as redis_py

from tests.bot.jobs.worker_hosts import FAKE, WorkerHost
from tests.bot.pictures import picture
from tests.bot_harness import ROOT
from tests.redis_server import RedisServer, RedisUnavailable, free_port
from tests.tls_certs import make_ca, server_certificate

PASSWORD = "tls-test-password-8f3a"
FAST = dict(ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="3", FAKE_STEP_S="0.05")
# The workers' user in README's ACL: the job side's keys, the commands they need, no channels.
WORKER_ACL = ["on", ">worker-password-77", "resetkeys", "~stylebot:q:*", "resetchannels", "-@all", "+@connection",
              "+@read", "+@write", "+@keyspace", "+@list", "+@hash", "+@set", "+@sortedset", "+@stream", "+@string",
              "+@scripting", "+@transaction", "-@dangerous"]


def started(server: RedisServer) -> RedisServer:
    try:
        return server.start()
    except RedisUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def tls(tmp_path):
    ca = make_ca(tmp_path / "certs")
    cert, key = server_certificate(tmp_path / "certs", ca)
    server = started(RedisServer(tmp_path / "redis-tls", password=PASSWORD, tls=(ca[0], cert, key)))
    yield server, ca[0]
    server.stop()


def run_worker(env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "worker"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "DEVICE": "cpu", "JOB_WORKERS": "1", **env})


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("stylebot worker:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def test_a_job_goes_through_redis_over_tls_with_a_password(fake_tg, start_bot, tls, tmp_path, alice, weights_dir):
    server, ca = tls
    env = {"REDIS_URL": server.url, "REDIS_CA_FILE": str(ca)}
    host = WorkerHost(server.url, tmp_path, "tls-box", weights_dir=weights_dir, env={**env, **FAST}).start()
    try:
        bot = start_bot(JOB_BACKEND="celery", JOB_WORKERS="0", **env)
        sent = fake_tg.send_text(alice, "/season")
        menu = fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent)
        fake_tg.press(alice, menu, text="Summer → winter")
        sent = fake_tg.send_photo(alice, picture((96, 64)))
        fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=120)
        assert PASSWORD not in bot.log and PASSWORD not in host.log
    finally:
        host.stop()
    assert server.command("DBSIZE") > 0     # it really went through this server


def test_a_worker_refuses_a_certificate_its_ca_did_not_sign_and_a_wrong_password(tls, tmp_path, weights_dir):
    server, ca = tls
    other_ca, _ = make_ca(tmp_path / "other", "other-ca")
    refused = run_worker({"REDIS_URL": server.url, "REDIS_CA_FILE": str(other_ca), "WEIGHTS_DIR": str(weights_dir)})
    assert refused.returncode == 2
    line = one_line(refused)
    assert "cannot work with Redis" in line and "certificate" in line.lower() and PASSWORD not in line

    wrong = server.url.replace(PASSWORD, "not-the-password")
    refused = run_worker({"REDIS_URL": wrong, "REDIS_CA_FILE": str(ca), "WEIGHTS_DIR": str(weights_dir)})
    assert refused.returncode == 2
    assert "cannot work with Redis" in one_line(refused) and "not-the-password" not in refused.stderr


def test_a_worker_without_redis_exits_with_one_line(weights_dir):
    port = free_port()
    began = time.monotonic()
    refused = run_worker({"REDIS_URL": f"redis://127.0.0.1:{port}/0", "WEIGHTS_DIR": str(weights_dir)})
    assert refused.returncode == 2 and time.monotonic() - began < 30
    assert f"127.0.0.1:{port}" in one_line(refused)
    missing = run_worker({"REDIS_URL": ""})
    assert missing.returncode == 2 and "REDIS_URL" in one_line(missing)


def test_the_workers_acl_user_runs_jobs_and_never_reaches_the_dialogs(fake_tg, start_bot, redis_server, tmp_path,
                                                                     alice, weights_dir):
    redis_server.command("ACL", "SETUSER", "stylebot-worker", *WORKER_ACL)
    worker_url = f"redis://stylebot-worker:worker-password-77@127.0.0.1:{redis_server.port}/0"
    host = WorkerHost(worker_url, tmp_path, "fenced", weights_dir=weights_dir, env=FAST).start()
    try:
        start_bot(JOB_BACKEND="celery", JOB_WORKERS="0", REDIS_URL=redis_server.url)
        sent = fake_tg.send_text(alice, "/season")
        menu = fake_tg.wait_for(chat_id=alice.id, text="seasons", after=sent)
        fake_tg.press(alice, menu, text="Summer → winter")
        sent = fake_tg.send_photo(alice, picture((96, 64)))
        fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=120)
    finally:
        host.stop()
    dialogs = [k for k in redis_server.command("KEYS", "stylebot:*") if not k.startswith(b"stylebot:q:")]
    assert dialogs, "the bot kept no dialog to test the fence with"
    as_worker = redis_py.Redis.from_url(worker_url, socket_timeout=2)
    try:
        for key in dialogs:
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                as_worker.get(key) if redis_server.command("TYPE", key) == b"string" else as_worker.hgetall(key)
    finally:
        as_worker.close()
    assert "NOPERM" not in host.log

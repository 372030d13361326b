"""JOB_BACKEND=celery with real parts: a redis-server, `python -m bot worker` hosts and the bot, all as
subprocesses, users talking through the fake Bot API, and faults made the way the world makes them.

The bot runs as a pure front end (JOB_WORKERS=0) unless a test says otherwise. Worker hosts run the
real engine on synthetic weights where the picture matters, and tests/bot/jobs/fake_engine.py's
SlowEngine where a test must catch a job while it runs.
"""
import json
import os
import re
import signal
import time

import pytest
import redis as redis_py

from tests.bot.jobs.worker_hosts import FAKE, WorkerHost
from tests.bot.pictures import picture
from tests.bot.test_dialogs import eventually

ADMIN_ID = 777
JOB_S = 120
JOB_KEYS = ("stylebot:q:job:*", "stylebot:q:in:*", "stylebot:q:out:*", "stylebot:q:lease:*")
STATUS = re.compile("Starting|In the queue|Working|Painting")


@pytest.fixture
def redis(redis_server):
    client = redis_py.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def bot_env(fake_tg, redis_server):
    fake_tg.add_user(id=ADMIN_ID, first_name="Admin")
    return {"REDIS_URL": redis_server.url, "JOB_BACKEND": "celery", "JOB_WORKERS": "0",
            "ADMIN_CHAT_ID": str(ADMIN_ID)}


@pytest.fixture
def hosts(redis_server, redis, tmp_path, weights_dir):
    """hosts(name, processes=1, **env) -> a started, ready WorkerHost; all are stopped at teardown."""
    started = []

    def start(name, processes=1, ready=True, **env):
        host = WorkerHost(redis_server.url, tmp_path, name, weights_dir=weights_dir, processes=processes, env=env)
        started.append(host)
        host.start()
        if ready:
            host.wait_ready(redis, processes)
        return host

    yield start
    for host in started:
        host.stop()


def job_keys(redis) -> list[bytes]:
    return [key for pattern in JOB_KEYS for key in redis.keys(pattern)]


def stats_text(fake_tg):
    sent = fake_tg.send_text(fake_tg._users[ADMIN_ID], "/stats")
    return fake_tg.wait_for(chat_id=ADMIN_ID, text="Up for", after=sent).text


def start_season(fake_tg, user, seed=5):
    """A CycleGAN job: one picture, one button; returns the message sent."""
    sent = fake_tg.send_text(user, "/season")
    menu = fake_tg.wait_for(chat_id=user.id, text="seasons", after=sent)
    fake_tg.press(user, menu, text="Summer → winter")
    return fake_tg.send_photo(user, picture((96, 64), seed=seed))


def test_a_job_runs_on_a_worker_host_whose_own_limits_decide_and_nothing_of_it_stays_in_redis(
        fake_tg, start_bot, hosts, redis, alice):
    hosts("gpu-box", MAX_SIDE=128)     # a host's own MAX_SIDE, below the bot's
    start_bot()
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((200, 150)))
    result = fake_tg.wait_for(chat_id=alice.id, kind="document", after=sent, timeout=JOB_S)
    assert result.image().size == (512, 384)     # 128 px wide on that host, then x4
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)
    assert redis.xlen("stylebot:q:events") == 0
    # /stats reads the registry every few seconds: the job's end shows within them.
    assert eventually(lambda: re.search(r"gpu-box #0: cpu, fp32, 1 jobs done, idle", stats_text(fake_tg)),
                      timeout=15), stats_text(fake_tg)


def job_side_bytes(redis) -> int:
    """What the job side holds in Redis: every stylebot:q: key, as MEMORY USAGE counts it."""
    return sum(redis.memory_usage(key) or 0 for key in redis.keys("stylebot:q:*"))


def test_after_a_burst_of_jobs_the_job_side_of_redis_is_back_to_its_size(fake_tg, start_bot, hosts, redis):
    hosts("box", processes=2, ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="5", FAKE_STEP_S="0.05")
    start_bot(MAX_QUEUE="10")
    users = [fake_tg.add_user(first_name=f"User{i}") for i in range(8)]
    fake_tg.wait_for(chat_id=users[0].id, kind="photo", after=start_season(fake_tg, users[0]), timeout=JOB_S)
    assert eventually(lambda: job_keys(redis) == [], timeout=10)
    baseline = job_side_bytes(redis)
    sent = [start_season(fake_tg, user, seed=i) for i, user in enumerate(users)]
    for user, message in zip(users, sent):
        fake_tg.wait_for(chat_id=user.id, kind="photo", after=message, timeout=JOB_S)
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)
    assert redis.xlen("stylebot:q:events") == 0
    # Eight pictures went through it; a few hundred bytes of registry timestamps may differ.
    assert job_side_bytes(redis) - baseline < 2048, (baseline, job_side_bytes(redis))


def test_task_messages_are_json_without_pictures_and_a_pickled_one_is_refused(
        fake_tg, start_bot, hosts, redis, redis_server, alice):
    start_bot()
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text=STATUS, after=sent)
    queued = [m for key in redis.keys("stylebot:q:broker:stylebot*") for m in redis.lrange(key, 0, -1)]
    assert len(queued) == 1
    message = json.loads(queued[0])
    assert message["content-type"] == "application/json" and len(queued[0]) < 4000
    # Someone with access to Redis slips in a pickle: the worker must never unpickle it.
    from celery import Celery
    sender = Celery(broker=redis_server.url, set_as_current=False)
    sender.conf.broker_transport_options = {"global_keyprefix": "stylebot:q:broker:"}
    sender.send_task("stylebot.run", args=["0" * 32, 1], queue="stylebot", serializer="pickle")

    host = hosts("box")
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert eventually(lambda: "untrusted content of type pickle" in host.log, timeout=10), host.log[-2000:]


def test_positions_count_across_workers_and_cancel_works_queued_and_running(
        fake_tg, start_bot, hosts, redis, alice):
    host = hosts("box", ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="200", FAKE_STEP_S="0.1")
    bob = fake_tg.add_user(first_name="Bob")
    start_bot()
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    sent_b = start_season(fake_tg, bob)
    fake_tg.wait_for(chat_id=bob.id, text="1 job ahead", after=sent_b)

    # Bob's job waits in the queue: cancelled, it never runs.
    fake_tg.send_text(bob, "/cancel")
    fake_tg.wait_for(chat_id=bob.id, text="Cancelled", after=sent_b)
    # Alice's runs: it stops within about two seconds, and its worker process stays with its engine.
    pid = host.registry(redis)[0]["pid"]
    cancel = fake_tg.send_text(alice, "/cancel")
    asked = time.monotonic()
    fake_tg.wait_for(chat_id=alice.id, text="Cancelled", after=cancel)
    assert eventually(lambda: "stopping, it is cancelled now" in host.log, timeout=5)
    assert time.monotonic() - asked < 3.0
    # Bob's message comes to the worker once it is free, and is dropped unrun.
    assert eventually(lambda: "not run" in host.log, timeout=10), host.log[-2000:]
    assert host.log.count(", run 1 ") == 1

    sent = start_season(fake_tg, alice, seed=7)
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert result.image().width == 20      # the second job on the same engine (fake_engine: width = 10 x jobs run)
    assert host.registry(redis)[0]["pid"] == pid
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)


def test_a_job_over_the_time_limit_is_stopped_with_an_apology(fake_tg, start_bot, hosts, redis, alice):
    hosts("box", ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="400", FAKE_STEP_S="0.1")
    start_bot(JOB_TIME_LIMIT="10")
    sent = start_season(fake_tg, alice)
    sorry = fake_tg.wait_for(chat_id=alice.id, text="took too long", after=sent, timeout=40)
    assert sorry.time - sent.time < 25
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)


def test_a_killed_worker_process_runs_the_job_again_and_a_poison_job_is_given_up_after_two(
        fake_tg, start_bot, hosts, redis, alice):
    host = hosts("box", ENGINE_FACTORY=FAKE + "PoisonEngine", FAKE_STEPS="40", FAKE_STEP_S="0.1")
    start_bot()
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    host.kill_pool_process()      # the OOM killer, mid-job
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert result.image().width == 10     # run again by the process that replaced the killed one, on a fresh engine
    assert host.log.count(", run 2 ") == 1

    # An upscale kills PoisonEngine's process every time: run twice, then the apology.
    sent = fake_tg.send_text(alice, "/upscale")
    fake_tg.wait_for(chat_id=alice.id, text="upscale", after=sent)
    sent = fake_tg.send_photo(alice, picture((64, 48), seed=2))
    assert fake_tg.wait_for(chat_id=alice.id, text="crashed", after=sent, timeout=JOB_S), host.log[-3000:]
    assert host.log.count("upscale, run 1 ") == 1 and host.log.count("upscale, run 2 ") == 1
    assert "upscale, run 3" not in host.log
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)


def test_a_lost_host_hands_its_job_on_within_a_minute_and_leaves_stats(fake_tg, start_bot, hosts, redis, alice):
    slow = dict(ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="100", FAKE_STEP_S="0.1")
    lost = hosts("lost", **slow)
    start_bot()
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    spare = hosts("spare", **slow)
    assert eventually(lambda: "lost #0" in (text := stats_text(fake_tg)) and "spare #0" in text, timeout=15)

    lost.kill()                    # every process of that host at once
    killed = time.monotonic()
    assert eventually(lambda: ", run 2 " in spare.log, timeout=60), spare.log[-2000:]
    assert time.monotonic() - killed < 60
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    # /stats forgets the lost host within a minute of its last word.
    assert eventually(lambda: "lost #0" not in stats_text(fake_tg), timeout=60)


def test_a_host_cut_off_mid_job_is_overtaken_and_its_late_result_dropped(fake_tg, start_bot, hosts, redis, alice):
    slow = dict(ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="60", FAKE_STEP_S="0.1")
    cut = hosts("cut", **slow)
    start_bot()
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    spare = hosts("spare", **slow)
    cut.freeze()                   # it says nothing more, as behind a cut cable
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    assert ", run 2 " in spare.log
    cut.thaw()                     # the cable is back: its run ends, but the job is no longer its
    assert eventually(lambda: "nothing reported" in cut.log or "it is moved now" in cut.log, timeout=30)
    time.sleep(2)
    assert len([m for m in fake_tg.messages(alice.id) if m.kind == "photo"]) == 1


def test_the_bot_restarted_mid_job_carries_on_and_delivers_once(fake_tg, start_bot, hosts, redis, alice):
    hosts("box", ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="80", FAKE_STEP_S="0.1")
    bot = start_bot()
    sent = start_season(fake_tg, alice)
    status = fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)

    # SIGTERM: a redeploy. The job goes on; after the restart its status message moves again.
    code, _ = bot.stop()
    assert code == 0
    restarted = time.monotonic()
    bot = start_bot()
    result = fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    edits = [c for c in fake_tg.calls("editMessageText") if c.time > restarted
             and str(c.params.get("message_id")) == str(status.message_id)]
    assert edits, "the status message did not move after the restart"
    assert not any("restarting" in (m.text or "") for m in fake_tg.messages(alice.id))

    # SIGKILL: the job finishes while the bot is gone, and comes once it is back.
    sent = start_season(fake_tg, alice, seed=8)
    fake_tg.wait_for(chat_id=alice.id, text="Painting", after=sent, timeout=JOB_S)
    os.killpg(bot.proc.pid, signal.SIGKILL)
    bot.proc.wait(10)
    assert eventually(lambda: redis.keys("stylebot:q:out:*") != [], timeout=JOB_S)   # done meanwhile
    start_bot()
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=result, timeout=30)
    time.sleep(3)
    assert len([m for m in fake_tg.messages(alice.id) if m.kind == "photo"]) == 2
    assert eventually(lambda: job_keys(redis) == [], timeout=10), job_keys(redis)


def test_redis_away_refuses_new_work_at_once_and_work_resumes_when_it_is_back(
        fake_tg, start_bot, hosts, redis, redis_server, alice):
    hosts("box", ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="30", FAKE_STEP_S="0.1")
    bot = start_bot()
    redis_server.freeze()
    try:
        sent = start_season(fake_tg, alice)
        sorry = fake_tg.wait_for(chat_id=alice.id, text="can't take pictures right now", after=sent, timeout=20)
        assert sorry.time - sent.time < 10
    finally:
        redis_server.thaw()
    assert "Traceback" not in bot.log
    sent = start_season(fake_tg, alice, seed=9)
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)


def test_a_lone_bot_runs_a_worker_host_of_its_own_and_takes_it_down_with_it(fake_tg, start_bot, redis, alice,
                                                                           tmp_path):
    bot = start_bot(JOB_WORKERS="1", ENGINE_FACTORY=FAKE + "SlowEngine", FAKE_STEPS="5", FAKE_STEP_S="0.05",
                    HEARTBEAT_FILE=str(tmp_path / "heartbeat"))
    sent = start_season(fake_tg, alice)
    fake_tg.wait_for(chat_id=alice.id, kind="photo", after=sent, timeout=JOB_S)
    # Its worker host is a child of the bot, and the health check counts it.
    from bot.operator.health import check
    assert check(tmp_path / "heartbeat", 30) is None
    workers = json.loads((tmp_path / "heartbeat").read_text())["workers"]
    assert workers and all(os.path.exists(f"/proc/{pid}") for pid in workers)
    code, _ = bot.stop()
    assert code == 0
    assert eventually(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), timeout=10)

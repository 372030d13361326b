"""Fixtures for the bot's tests: a fake Telegram per test, and the bot started against it."""
import pytest

from tests.bot_harness import BotProcess
from tests.fake_telegram import FakeTelegram
from tests.redis_server import RedisServer, RedisUnavailable


@pytest.fixture
def fake_tg():
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def alice(fake_tg):
    """A user in a private chat; a module that needs her with a language or a username overrides this."""
    return fake_tg.add_user(first_name="Alice")


@pytest.fixture
def bot_env() -> dict:
    """Extra environment for the bot; override this fixture in a module to change it."""
    return {}


@pytest.fixture
def start_bot(fake_tg, weights_dir, bot_env, tmp_path):
    """start_bot(**env) -> a ready BotProcess; every one started is stopped at teardown.

    Teardown fails when the bot leaks its token into the log, or when the
    SIGTERM sent there does not end it cleanly (exit code 0), as `docker stop` expects.
    """
    started = []

    def start(**env) -> BotProcess:
        process = BotProcess(fake_tg, env_overrides={**bot_env, **env}, weights_dir=weights_dir,
                             log_path=tmp_path / f"bot-{len(started)}.log")
        started.append(process)
        process.start()
        process.wait_ready()
        return process

    yield start
    for process in started:
        stopped_by_test = process.proc.poll() is not None
        code, log = process.stop()
        process.assert_token_not_logged()
        if not stopped_by_test:
            assert code == 0, f"the bot exited with {code} on SIGTERM:\n{log[-4000:]}"


@pytest.fixture
def bot(start_bot) -> BotProcess:
    return start_bot()


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own on a free port; the test skips, with the reason, where none can start."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except RedisUnavailable as e:
        pytest.skip(str(e))
    yield server
    server.stop()

"""Settings from the environment and .env, and how `python -m bot` refuses bad ones."""
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from bot.operator.logs import MASK, TokenMaskingFilter
from bot.settings import OFFICIAL_API_URL, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAFakeTokenForTests_abcdefghijkl"


def settings(env_file=None, **env):
    return load_settings({"BOT_TOKEN": TOKEN, **env}, env_file=env_file)


def test_defaults():
    s = settings()
    assert s.bot_token == TOKEN
    assert s.telegram_api_url == OFFICIAL_API_URL
    assert s.admin_chat_id is None and s.webhook_url is None and not s.use_webhook
    assert (s.device, s.max_side, s.job_workers, s.max_queue, s.port) == ("auto", 1024, 1, 8, 8080)
    assert s.presets_dir is None


def test_the_fast_style_follows_what_the_workers_engines_chose():
    auto = settings(DEVICE="auto")
    assert auto.default_fast_style == "lite"        # no worker ready yet: the CPU's
    auto.engine_reports.update({"device": "cuda:0", "fast_style": "adain"})
    assert auto.default_fast_style == "adain"       # auto found a GPU
    chosen = settings(FAST_STYLE="lite")
    chosen.engine_reports.update({"fast_style": "adain"})
    assert chosen.default_fast_style == "lite"          # FAST_STYLE always wins


def test_every_variable_is_read():
    s = settings(TELEGRAM_API_URL="http://127.0.0.1:8081/", WEIGHTS_DIR="/w", ADMIN_CHAT_ID="-100123",
                 DEVICE="cuda:1", MAX_SIDE="512", JOB_WORKERS="2", MAX_QUEUE="3", PRESETS_DIR="/p",
                 WEBHOOK_URL="https://example.org/hook/telegram", WEBHOOK_SECRET="s3cret_-x", PORT="8443",
                 JOB_TIME_LIMIT="120", QUALITY_STEPS="30")
    assert s.telegram_api_url == "http://127.0.0.1:8081"     # no trailing slash: from_base adds /bot...
    assert s.weights_dir == Path("/w") and s.presets_dir == Path("/p")
    assert s.admin_chat_id == -100123 and s.device == "cuda:1"
    assert (s.max_side, s.job_workers, s.max_queue, s.port, s.job_time_limit_s) == (512, 2, 3, 8443, 120.0)
    assert s.quality_steps == 30
    assert s.use_webhook and s.webhook_path == "/hook/telegram" and s.webhook_secret == "s3cret_-x"


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"# comment\nBOT_TOKEN={TOKEN}\nMAX_QUEUE=5\nADMIN_CHAT_ID='42'\nMAX_SIDE=300\n")
    s = load_settings({"MAX_SIDE": "700"}, env_file=env_file)
    assert s.bot_token == TOKEN and s.max_queue == 5 and s.admin_chat_id == 42
    assert s.max_side == 700


def test_empty_values_count_as_unset():
    s = settings(ADMIN_CHAT_ID="", WEBHOOK_URL=" ", TELEGRAM_API_URL="")
    assert s.admin_chat_id is None and s.webhook_url is None and s.telegram_api_url == OFFICIAL_API_URL


@pytest.mark.parametrize("env, word", [
    ({"BOT_TOKEN": ""}, "BOT_TOKEN is not set"),
    ({"BOT_TOKEN": "not-a-token"}, "BOT_TOKEN is malformed"),
    ({"BOT_TOKEN": "123:short"}, "BOT_TOKEN is malformed"),
    ({"BOT_TOKEN": TOKEN + " x"}, "BOT_TOKEN is malformed"),
    ({"MAX_QUEUE": "many"}, "MAX_QUEUE must be a whole number"),
    ({"JOB_WORKERS": "0"}, "JOB_WORKERS must be at least 1"),
    ({"PORT": "70000"}, "PORT must be at most 65535"),
    ({"DEVICE": "tpu"}, "DEVICE must be one of"),
    ({"TELEGRAM_API_URL": "api.telegram.org"}, "TELEGRAM_API_URL must be an http(s) URL"),
    ({"WEBHOOK_URL": "example.org/hook"}, "WEBHOOK_URL must be"),
    ({"WEBHOOK_SECRET": "no spaces allowed"}, "WEBHOOK_SECRET may hold only"),
])
def test_bad_settings_are_one_clear_line(env, word):
    with pytest.raises(SettingsError) as e:
        load_settings({"BOT_TOKEN": TOKEN, **env}, env_file=None)
    assert word in str(e.value) and "\n" not in str(e.value)


def test_malformed_token_is_not_echoed():
    with pytest.raises(SettingsError) as e:
        load_settings({"BOT_TOKEN": "123456:has spaces in the secret part"}, env_file=None)
    assert "secret part" not in str(e.value)


def run_bot(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in __import__("os").environ.items() if k not in ("BOT_TOKEN",)}
    return subprocess.run([sys.executable, "-m", "bot"], cwd=cwd, env={**clean, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("token, word", [(None, "not set"), ("12345", "malformed")])
def test_python_m_bot_exits_2_with_one_line(tmp_path, token, word):
    # tmp_path as the working directory: no .env of the developer's is read.
    result = run_bot({} if token is None else {"BOT_TOKEN": token}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT_TOKEN" in lines[0] and word in lines[0], result.stderr
    assert result.stdout == ""


def test_python_m_bot_reads_dotenv_in_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text(f"BOT_TOKEN={TOKEN}\nMAX_QUEUE=zero\n")
    result = run_bot({}, cwd=tmp_path)
    # Getting past the token to MAX_QUEUE shows the token came from .env.
    assert result.returncode == 2 and "MAX_QUEUE" in result.stderr


def test_token_is_masked_in_log_lines_and_tracebacks():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(TokenMaskingFilter(TOKEN))
    log = logging.getLogger("test-masking")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        log.warning("GET https://api.telegram.org/bot%s/getMe failed", TOKEN)
        try:
            raise RuntimeError(f"https://api.telegram.org/file/bot{TOKEN}/photos/1.jpg")
        except RuntimeError:
            log.exception("download failed")
        log.info("only the secret half: %s", TOKEN.split(":")[1])
    finally:
        log.removeHandler(handler)
    secret = TOKEN.split(":")[1]
    assert len(records) == 3
    assert all(secret not in r for r in records), records
    assert MASK in records[0] and MASK in records[1] and MASK in records[2]


def test_the_celery_backend_needs_redis_and_may_run_no_workers_of_its_own(tmp_path):
    assert settings().job_backend == "local"
    with pytest.raises(SettingsError, match="JOB_BACKEND=celery needs REDIS_URL"):
        settings(JOB_BACKEND="celery")
    front = settings(JOB_BACKEND="celery", REDIS_URL="redis://r:6379/0", JOB_WORKERS="0")
    assert (front.job_backend, front.job_workers) == ("celery", 0)
    with pytest.raises(SettingsError, match="JOB_WORKERS must be at least 1"):
        settings(JOB_WORKERS="0")       # the local backend has nobody else to run its jobs
    with pytest.raises(SettingsError, match="JOB_BACKEND must be one of local, celery"):
        settings(JOB_BACKEND="rq")
    with pytest.raises(SettingsError, match="REDIS_CA_FILE names no readable file"):
        settings(REDIS_URL="rediss://r:6380/0", REDIS_CA_FILE=str(tmp_path / "missing.pem"))


def test_a_worker_host_needs_redis_but_no_token():
    worker = load_settings({"REDIS_URL": "redis://r:6379/0", "WORKER_NAME": "gpu-box", "WORKER_THREADS": "2"},
                           env_file=None, worker=True)
    assert (worker.bot_token, worker.job_backend, worker.worker_name) == (None, "celery", "gpu-box")
    assert (worker.job_workers, worker.worker_threads) == (None, 2)   # None: one per GPU, decided on the host
    with pytest.raises(SettingsError, match="a worker host needs REDIS_URL"):
        load_settings({}, env_file=None, worker=True)


def test_python_m_bot_takes_worker_or_nothing():
    done = subprocess.run([sys.executable, "-m", "bot", "serve"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "BOT_TOKEN": TOKEN})
    assert done.returncode == 2 and done.stderr.strip() == "usage: python -m bot [worker]"


def test_the_redis_password_is_masked_like_the_token():
    from bot.operator.logs import url_password
    password = url_password("rediss://stylebot-bot:s3cret-Redis-pass@redis.example.org:6380/0")
    assert password == "s3cret-Redis-pass"
    masking = TokenMaskingFilter(TOKEN, password, None)
    assert masking.mask("cannot reach redis://stylebot-bot:s3cret-Redis-pass@host") == \
        f"cannot reach redis://stylebot-bot:{MASK}@host"

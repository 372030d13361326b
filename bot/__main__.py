"""`python -m bot`: the bot; `python -m bot worker`: a worker host (JOB_BACKEND=celery). Both run until SIGTERM.

Exit codes: 0 after a clean stop, 2 when the settings are wrong or (a worker
host) Redis cannot be used; one line on stderr says which.
"""
import sys

USAGE = "usage: python -m bot [worker]"


def main(argv: list[str] | None = None) -> int:
    # Imported here, not at the top: spawned job workers import this module too.
    from bot.settings import SettingsError, load_settings

    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["worker"]):
        print(USAGE, file=sys.stderr)
        return 2
    worker = args == ["worker"]
    try:
        settings = load_settings(worker=worker)
    except SettingsError as e:
        print(f"stylebot{' worker' if worker else ''}: {e}", file=sys.stderr)
        return 2
    return run_worker(settings) if worker else run_bot(settings)


def run_bot(settings) -> int:
    import asyncio

    from bot.app import run
    from bot.operator.logs import setup_logging, url_password
    from bot.presets import PresetError

    setup_logging(settings.bot_token, url_password(settings.redis_url))
    try:
        asyncio.run(run(settings))
    except PresetError as e:
        print(f"stylebot: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def run_worker(settings) -> int:
    import os

    from bot.jobs import celery_worker
    from bot.jobs.process import children_of
    from bot.operator.health import Heartbeat
    from bot.operator.logs import setup_logging, url_password

    # The password in REDIS_URL is a secret like a token: masked in every log line.
    setup_logging(url_password(settings.redis_url))
    Heartbeat(settings.heartbeat_file, workers=lambda: children_of(os.getpid())).start_thread()
    # ENGINE_FACTORY ("module:Name") swaps the engine, for tests and for engines of one's own.
    return celery_worker.main(settings, os.environ.get("ENGINE_FACTORY") or celery_worker.ENGINE_FACTORY)


if __name__ == "__main__":
    sys.exit(main())

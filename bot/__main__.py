"""`python -m bot`: read the settings, then run until SIGTERM or SIGINT.

Exit codes: 0 after a clean stop, 2 when the settings are wrong (one line on
stderr says which).
"""
import sys


def main() -> int:
    # Imported here, not at the top: spawned job workers import this module too.
    import asyncio

    from bot.app import run
    from bot.operator.logs import setup_logging
    from bot.presets import PresetError
    from bot.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"stylebot: {e}", file=sys.stderr)
        return 2
    setup_logging(settings.bot_token)
    try:
        asyncio.run(run(settings))
    except PresetError as e:
        print(f"stylebot: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Logging set-up that keeps the bot token out of every line.

aiohttp and aiogram put request URLs into exceptions and log messages, and
each Bot API URL holds the token (`.../bot<TOKEN>/sendPhoto`), so a filter on
the handler rewrites the finished message before it is written anywhere.
"""
from __future__ import annotations

import logging
import sys
from urllib.parse import urlsplit

MASK = "<token>"


class TokenMaskingFilter(logging.Filter):
    def __init__(self, *secrets: str):
        super().__init__()
        # The secret half of a token alone is still a secret, so mask it too.
        secrets = tuple(s for s in secrets if s)
        parts = set(secrets) | {s.partition(":")[2] for s in secrets if ":" in s}
        self.secrets = sorted((p for p in parts if len(p) >= 8), key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        return True


def url_password(url: str | None) -> str | None:
    """The password in a URL such as REDIS_URL's redis://user:password@host, if it has one."""
    return urlsplit(url).password if url else None


def setup_logging(*secrets: str | None, level: int = logging.INFO) -> None:
    """Log to stderr with every one of `secrets` (the token, Redis's password) masked."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(TokenMaskingFilter(*secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would print every webhook request; warnings are enough.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

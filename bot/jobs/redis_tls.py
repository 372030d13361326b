"""How the bot and the workers connect to Redis: a password in the URL, TLS for rediss://.

A rediss:// URL always verifies the server's certificate: against
REDIS_CA_FILE when it is set (a private CA, as most hosted and self-run
Redis servers have), else against the system's CAs. redis-py and Celery's
Redis transport take these options in different shapes; both come from here.
"""
from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "rediss"


def redis_py_options(url: str, ca_file: Path | None) -> dict:
    """Keyword arguments for redis-py's from_url."""
    if not uses_tls(url):
        return {}
    options = {"ssl_cert_reqs": "required"}
    if ca_file is not None:
        options["ssl_ca_certs"] = str(ca_file)
    return options


def celery_ssl_options(url: str, ca_file: Path | None) -> dict | None:
    """Celery's broker_use_ssl (kombu refuses a rediss:// URL without one)."""
    if not uses_tls(url):
        return None
    options = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if ca_file is not None:
        options["ssl_ca_certs"] = str(ca_file)
    return options


def safe_url(url: str) -> str:
    """The URL without its password, fit for a log line."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"

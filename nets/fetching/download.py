"""Downloading one file over HTTP(S), with retries for what is worth retrying and a checksum at the end."""
from __future__ import annotations

import hashlib
import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from nets.errors import WeightsError, first_line

Progress = Callable[[int, int | None], None]  # (bytes done, bytes expected or None)


class _Transient(Exception):
    """A failure worth another try: timeouts, resets, 5xx, short bodies."""


def mirrored(url: str, mirror: str | None) -> str:
    """`url` with its scheme and host replaced by `mirror` (which may carry a path prefix)."""
    if not mirror:
        return url
    return mirror.rstrip("/") + urllib.parse.urlsplit(url).path


def _stream(url: str, path: Path, timeout: float, progress: Progress | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    done = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, path.open("wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Transient(f"HTTP {exc.code} {exc.reason}") from exc
        raise WeightsError(f"HTTP {exc.code} {exc.reason} for {url}", "download") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise _Transient(f"timed out after {timeout:g} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise _Transient(f"timed out after {timeout:g} s") from exc
        raise _Transient(f"cannot connect: {exc.reason}") from exc
    except (ConnectionError, http.client.HTTPException) as exc:
        raise _Transient(f"connection broke: {first_line(exc)}") from exc
    # http.client does not complain when the server closes early, so count ourselves.
    if total is not None and done != total:
        raise _Transient(f"got {done} of {total} bytes")
    return digest.hexdigest(), done


def download(url: str, path: str | Path, *, size: int | None = None, sha256: str | None = None,
             retries: int = 3, backoff: float = 2.0, timeout: float = 60.0,
             progress: Progress | None = None) -> tuple[str, int]:
    """Stream `url` into `path`, retrying transient failures with exponential backoff.

    Returns (sha256, bytes). Raises WeightsError "download" (gave up, or a 4xx)
    or "checksum" (wrong size or hash); on any failure `path` is gone.
    """
    path = Path(path)
    try:
        for attempt in range(retries + 1):
            try:
                got_sha, got_size = _stream(url, path, timeout, progress)
                break
            except _Transient as exc:
                if attempt == retries:
                    tries = f"{retries + 1} attempts" if retries else "1 attempt"
                    raise WeightsError(f"download failed after {tries}: {exc} ({url})", "download") from exc
                time.sleep(backoff * 2 ** attempt)
        if size is not None and got_size != size:
            raise WeightsError(f"{url} has {got_size} bytes, expected {size}; not the published file", "checksum")
        if sha256 is not None and got_sha != sha256.lower():
            raise WeightsError(f"sha256 mismatch for {url}: got {got_sha}, expected {sha256}", "checksum")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return got_sha, got_size

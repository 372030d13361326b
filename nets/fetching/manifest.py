"""`manifest.json` beside the weights: one record per converted file, and whether a file is still it."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from nets.catalog import ModelEntry
from nets.weights import entry_of

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


def save(entry: ModelEntry, dest: Path, tensors: dict[str, torch.Tensor], *, synthetic: bool) -> dict:
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
        "sha256": sha256_file(path),
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
    entry = entry_of(model)
    path = Path(dest) / entry.filename
    if not record or not path.is_file() or record.get("arch") != entry.arch():
        return False
    if record.get("synthetic") and not synthetic:
        return False
    return sha256_file(path) == record.get("sha256")

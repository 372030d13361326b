"""Official state dicts into ours: read safely, pruned, checked against the architecture, float16.

Official `.pth` files are pickles, so they are only ever read with
`torch.load(weights_only=True)`, which refuses to build arbitrary objects.
"""
from __future__ import annotations

from pathlib import Path

import torch

from nets.catalog import ModelEntry
from nets.errors import WeightsError, first_line
from nets.weights import entry_of, reference_layout

FLOAT16_MAX = 65504.0


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
        raise WeightsError(f"{path.name} is not a plain PyTorch state dict: {first_line(exc)}", "layout") from exc
    if isinstance(obj, dict):
        for wrapper in ("params_ema", "params"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path.name} holds no state dict of tensors", "layout")
    state = dict(obj)
    return entry_of(model).prune(state) if model is not None else state


def to_float16(model: ModelEntry | str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check `state` against the architecture and convert it for saving."""
    entry = entry_of(model)
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

"""Weights out of Magenta's quantized ONNX models, for nets.arch.arbitrary_style.

The TFLite models (int8 weights, 8-bit activations) were converted to ONNX
as QuantizeLinear/DequantizeLinear pairs around float operators. Every weight
and bias is an int8 or int32 initializer that one DequantizeLinear node turns
into floats: (q - zero_point) * scale, per output channel. Doing that here
gives float weights our float networks load as they are.

Needs the `onnx` package, a build-time tool only: the images' run-time venv
never has it, so it is imported inside the function.
"""
from __future__ import annotations

import numpy as np
import torch

from nets.errors import WeightsError

_LEAVES = {"weights": "weight", "depthwise_weights": "weight", "Conv2D_bias": "bias", "depthwise_bias": "bias"}
_STYLE_NORM = {"Conv": "beta", "Conv_1": "gamma"}  # Magenta computes beta first, then gamma


def our_key(source_name: str) -> str | None:
    """The attribute path a source variable maps to (nets/arch/arbitrary_style.py states the rule);
    None for a name that holds no weight."""
    scopes = source_name.split("/")
    leaf = _LEAVES.get(scopes.pop())
    if leaf is None:
        return None
    if scopes[:2] == ["style_params", "transformer"]:
        scopes = scopes[2:]
        at = scopes.index("StyleNorm")
        scopes[at:at + 2] = ["style_norm", _STYLE_NORM[scopes[at + 1]]]
    elif scopes[:1] == ["transformer"]:
        scopes = scopes[1:]
    return ".".join(s.lower() for s in scopes + [leaf])


def dequantized_initializers(model_bytes: bytes) -> dict[str, np.ndarray]:
    """Source variable name -> float32 array, for every initializer a DequantizeLinear reads.

    The name comes from the node's output (`<variable>_dequant`), not its
    input: the converter shares one all-zero initializer between zero points
    and zero biases, so an input can be called `zero_point__100`.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise WeightsError(f"not an ONNX model: {exc}", "layout") from exc
    graph = model.graph
    initializers = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in initializers:
            continue
        q = initializers[node.input[0]].astype(np.float64)
        scale = initializers[node.input[1]].astype(np.float64)
        zero = initializers[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(scale)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and q.ndim > 1:  # per-channel: broadcast along `axis`
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        name = node.output[0].removesuffix("_dequant")
        out[name] = ((q - zero) * scale).astype(np.float32)
    return out


def state_dict_for(model_bytes: bytes, layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The ONNX model's weights under our names, checked against `layout` (key -> shape).

    A source bias with no place in our network belongs to a convolution that a
    conditional instance norm follows, which cancels any per-channel constant;
    it is dropped. Anything else that does not fit is an error.
    """
    state: dict[str, torch.Tensor] = {}
    for name, value in dequantized_initializers(model_bytes).items():
        key = our_key(name)
        if key is None:
            continue
        if key not in layout:
            if key.endswith(".bias"):
                continue
            raise WeightsError(f"{name} ({key}) has no place in the network", "layout")
        if tuple(value.shape) != layout[key]:
            raise WeightsError(f"{name}: shape {value.shape}, the network wants {layout[key]}", "layout")
        state[key] = torch.from_numpy(value)
    missing = sorted(set(layout) - set(state))
    if missing:
        raise WeightsError(f"the ONNX model lacks {missing[:3]}{'...' if len(missing) > 3 else ''}", "layout")
    return state

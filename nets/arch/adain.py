"""AdaIN decoder of pytorch-AdaIN (`decoder.pth`): relu4_1 features back to RGB."""
import torch
from torch import nn


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU()] if relu else [])


def _up() -> nn.Module:
    return nn.Upsample(scale_factor=2, mode="nearest")


def adain_decoder() -> nn.Sequential:
    layers: list[nn.Module] = _conv(512, 256) + [_up()]
    layers += _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 128) + [_up()]
    layers += _conv(128, 128) + _conv(128, 64) + [_up()]
    layers += _conv(64, 64) + _conv(64, 3, relu=False)
    return nn.Sequential(*layers)


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Give content features the channel-wise mean and std of style features."""
    c_mean, c_std = feature_stats(content, eps)
    s_mean, s_std = feature_stats(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


def feature_stats(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    mean = flat.mean(dim=2).reshape(n, c, 1, 1)
    std = (flat.var(dim=2) + eps).sqrt().reshape(n, c, 1, 1)
    return mean, std

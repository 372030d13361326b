"""Magenta's small arbitrary-style networks (Ghiasi et al. 2017), as in the TF Hub TFLite models.

Two networks. The style predictor (MobileNetV2 to layer_19, a global mean, a
1x1 convolution) turns a style picture into 100 numbers. The style transfer
network contracts the content with three convolutions, runs five residual
blocks of 32 channels and expands with three; every normalisation after the
contraction is a conditional instance norm whose scale and shift come from
the 100 numbers through 1x1 convolutions. Pictures are RGB in 0..1. This is
the 0.25-width network of the TFLite release: 8, 16 and 32 channels.

Attribute names follow one rule from the source's variable names, so loading
is `load_state_dict` and nothing else:
- the scopes of a name become attribute paths, lower-cased, joined by dots,
  and the leaf `weights` or `depthwise_weights` becomes `weight`,
  `Conv2D_bias` or `depthwise_bias` becomes `bias`;
- the transfer network's root scope `transformer/` is dropped, and its style
  parameters `style_params/transformer/<layer>/StyleNorm/Conv` and `.../Conv_1`
  (Magenta's beta and gamma, in that order) become `<layer>.style_norm.beta`
  and `<layer>.style_norm.gamma`.
So `transformer/contract/conv1/weights` is `contract.conv1.weight`,
`MobilenetV2/expanded_conv_3/depthwise/depthwise_weights` is
`mobilenetv2.expanded_conv_3.depthwise.weight`, and
`style_params/transformer/residual/residual1/conv1/StyleNorm/Conv_1/weights`
is `residual.residual1.conv1.style_norm.gamma.weight`.
"""
import torch
from torch import nn
from torch.nn import functional as F

STYLE_DIM = 100
# MobileNetV2's inverted residuals (expansion, output channels, stride), as in
# slim's V2_DEF; the first block has no expansion layer.
_BLOCKS = ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1),
           (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1),
           (6, 160, 2), (6, 160, 1), (6, 160, 1), (6, 320, 1))


# --- style prediction ---------------------------------------------------------

def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's SAME padding: what does not split evenly goes to the bottom and right."""
    height, width = x.shape[-2:]
    pad_h = max((-(-height // stride) - 1) * stride + kernel - height, 0)
    pad_w = max((-(-width // stride) - 1) * stride + kernel - width, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow pads: the same output size at stride 1, half at 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_same_pad(x, self.kernel_size[0], self.stride[0]))


class InvertedResidual(nn.Module):
    """expand (1x1, ReLU6), depthwise (3x3, ReLU6), project (1x1, linear), plus the input when shapes match."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        if expansion != 1:
            self.expand = nn.Conv2d(cin, hidden, 1)
        self.depthwise = SameConv2d(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self.expand(x)) if hasattr(self, "expand") else x
        h = self.project(F.relu6(self.depthwise(h)))
        return x + h if self.residual else h


class MobilenetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = SameConv2d(3, 32, 3, 2)
        cin = 32
        for index, (expansion, cout, stride) in enumerate(_BLOCKS):
            name = f"expanded_conv_{index}" if index else "expanded_conv"
            self.add_module(name, InvertedResidual(cin, cout, expansion, stride))
            cin = cout
        self.conv_1 = nn.Conv2d(cin, 1280, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.conv(x))
        for index in range(len(_BLOCKS)):
            x = getattr(self, f"expanded_conv_{index}" if index else "expanded_conv")(x)
        return F.relu6(self.conv_1(x))


class _Bottleneck(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1280, STYLE_DIM, 1)


class StylePredictor(nn.Module):
    """A style picture (Nx3xHxW, 0..1; trained at 256x256) to its style vector (Nx100)."""

    def __init__(self):
        super().__init__()
        self.mobilenetv2 = MobilenetV2()
        self.mobilenet_conv = _Bottleneck()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.mobilenetv2(x).mean(dim=(2, 3), keepdim=True)
        return self.mobilenet_conv.conv(features).flatten(1)


# --- style transfer -----------------------------------------------------------

class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose per-channel scale (gamma) and shift (beta) come from the style vector."""

    eps = 1e-5  # the TFLite graph's StyleNorm/batchnorm/add/y

    def __init__(self, channels: int):
        super().__init__()
        self.beta = nn.Conv2d(STYLE_DIM, channels, 1)
        self.gamma = nn.Conv2d(STYLE_DIM, channels, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        # The statistics and the style's scale and shift stay float32 whatever
        # the layers run in: a variance over a whole picture, or a gain, loses
        # its low bits in a 16-bit type, and these are a few hundred numbers.
        style = style.float()[:, :, None, None]
        gamma = F.conv2d(style, self.gamma.weight.float(), self.gamma.bias.float())
        beta = F.conv2d(style, self.beta.weight.float(), self.beta.bias.float())
        wide = x.float()
        mean = wide.mean(dim=(2, 3), keepdim=True)
        var = wide.var(dim=(2, 3), keepdim=True, unbiased=False)
        scale = gamma * torch.rsqrt(var + self.eps)
        return (wide * scale + (beta - mean * scale)).to(x.dtype)


class ReflectConv(nn.Conv2d):
    """A convolution on a reflection-padded input, as Magenta's conv2d; a stride of 2 halves the size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = True):
        super().__init__(cin, cout, kernel, stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.kernel_size[0] // 2
        return super().forward(F.pad(x, (pad, pad, pad, pad), mode="reflect"))


class StyledConv(ReflectConv):
    """A reflection-padded convolution followed by the conditional instance norm.

    It has no bias: the norm subtracts each channel's mean, which would cancel it.
    """

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__(cin, cout, kernel, bias=False)
        self.style_norm = ConditionalInstanceNorm(cout)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.style_norm(super().forward(x), style)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = StyledConv(channels, channels, 3)
        self.conv2 = StyledConv(channels, channels, 3)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x, style)), style)


class Upsampling(nn.Module):
    """Magenta's smooth stand-in for a transposed convolution: nearest x2 upsampling, then a convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, scale: int):
        super().__init__()
        self.scale = scale
        self.conv = StyledConv(cin, cout, kernel)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.conv(x, style)


class _Contract(nn.Module):
    def __init__(self):
        super().__init__()
        # Batch norm in the contraction was folded into these biases by the TFLite converter.
        self.conv1 = ReflectConv(3, 8, 9)
        self.conv2 = ReflectConv(8, 16, 3, 2)
        self.conv3 = ReflectConv(16, 32, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        for index in range(1, 6):
            self.add_module(f"residual{index}", ResidualBlock(32))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        for block in self.children():
            x = block(x, style)
        return x


class _Expand(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = Upsampling(32, 16, 3, 2)
        self.conv2 = Upsampling(16, 8, 3, 2)
        self.conv3 = Upsampling(8, 3, 9, 1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x, style))
        x = F.relu(self.conv2(x, style))
        return torch.sigmoid(self.conv3(x, style))


class StyleTransformer(nn.Module):
    """Content (Nx3xHxW, 0..1, sides a multiple of 4) and style vectors (Nx100) to the painted content."""

    # Two stride-2 convolutions down, two x2 upsamplings back.
    stride = 4

    def __init__(self):
        super().__init__()
        self.contract = _Contract()
        self.residual = _Residual()
        self.expand = _Expand()

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.expand(self.residual(self.contract(content), style), style)


def style_predictor() -> StylePredictor:
    return StylePredictor()


def style_transformer() -> StyleTransformer:
    return StyleTransformer()

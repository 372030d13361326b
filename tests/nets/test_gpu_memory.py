"""Memory: an out-of-memory error becomes a clear NetsError, the model cache counts what models hold."""
import pytest
import torch
from PIL import Image
from torch import nn

from nets import gpu, translate as translation
from nets.engine import Engine
from nets.errors import NetsError, OutOfMemory
from nets.weights import model_bytes


def test_cuda_out_of_memory_becomes_a_clear_error(weights_dir, monkeypatch):
    engine = Engine(weights_dir, device="cpu", max_side=64, threads=1)

    def out_of_memory(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 3.81 GiB total)")

    monkeypatch.setattr(translation, "translate", out_of_memory)
    with pytest.raises(OutOfMemory) as caught:
        engine.translate(Image.new("RGB", (80, 60)), "monet")
    assert isinstance(caught.value, NetsError) and caught.value.code == "out_of_memory"
    assert "64x48 picture" in caught.value.message and "smaller picture" in caught.value.message
    assert "GiB" not in caught.value.message       # torch's words stay in the log


def test_other_errors_pass_through(weights_dir, monkeypatch):
    engine = Engine(weights_dir, device="cpu", max_side=64, threads=1)
    monkeypatch.setattr(translation, "translate", lambda *_, **__: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        engine.translate(Image.new("RGB", (8, 8)), "monet")


def test_model_bytes_counts_each_tensor_in_its_dtype_and_shared_ones_once():
    model = nn.Sequential(nn.Linear(10, 10), nn.BatchNorm1d(10)).half()
    model[1].float()                            # float32 norm in a float16 model
    expected = (100 + 10) * 2 + (10 + 10 + 10 + 10) * 4 + 8   # weights, norm params and stats, int64 counter
    assert model_bytes(model) == expected
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert model_bytes(tied) == 16 * 4


def test_the_model_cache_leaves_most_of_a_gpu_to_the_job(monkeypatch):
    monkeypatch.setattr(gpu, "total_memory", lambda device: 4 * 2**30)
    assert gpu.model_budget(torch.device("cuda:0"), 2_000_000_000) == 2**30
    assert gpu.model_budget(torch.device("cuda:0"), 500_000_000) == 500_000_000
    assert gpu.model_budget(torch.device("cpu"), 2_000_000_000) == 2_000_000_000

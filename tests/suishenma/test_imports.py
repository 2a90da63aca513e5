"""The core stays pure: importing it loads no web, database or camera library (DESIGN §1)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PROJECT_ROOT

FORBIDDEN = [
    "fastapi",
    "starlette",
    "cv2",
    "sqlite_utils",
    "httpx",
    "uvicorn",
    "zxingcpp",
    "pyzbar",
    "issuer",
    "verifier",
]


def test_importing_suishenma_loads_no_web_db_or_camera_library() -> None:
    code = (
        "import sys, json, suishenma, suishenma.cli, suishenma.qr;"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert json.loads(out.stdout) == []


def test_public_surface_is_declared() -> None:
    import suishenma

    assert all(hasattr(suishenma, name) for name in suishenma.__all__)

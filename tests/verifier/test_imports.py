"""The verifier library never loads the web stack: only ``suishenma-verifier serve`` imports FastAPI."""

from __future__ import annotations

import subprocess
import sys


def test_verifier_and_its_cli_load_no_web_framework() -> None:
    forbidden = ["fastapi", "starlette", "uvicorn", "pydantic", "issuer", "cv2", "evdev"]
    code = f"import sys, verifier, verifier.cli; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"the verifier loads {loaded}"


def test_the_service_module_is_where_fastapi_comes_in() -> None:
    code = "import sys, verifier.local_service; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "True"

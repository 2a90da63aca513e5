"""The image type used across the scanner: OpenCV hands back arrays of several dtypes and shapes."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

Frame = npt.NDArray[Any]

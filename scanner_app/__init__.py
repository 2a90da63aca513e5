"""Suishenma kiosk scanner: webcam to verdict (DESIGN §5). The only package that touches a camera or a window."""

from .decode import Decoded, Decoder
from .dedup import Dedup
from .loop import Scanner, Stats, SyncThread, VerifierLike
from .sources import CaptureSource, EndOfStream, FrameSource, ImageFolderSource, VideoFileSource
from .ui import Screen, render

__all__ = [
    "CaptureSource",
    "Decoded",
    "Decoder",
    "Dedup",
    "EndOfStream",
    "FrameSource",
    "ImageFolderSource",
    "Scanner",
    "Screen",
    "Stats",
    "SyncThread",
    "VerifierLike",
    "VideoFileSource",
    "render",
]

"""Never worse than zxing-cpp alone: on every image set of bench/scanner.py, the pipeline reads every image
that zxing-cpp alone reads (and reads it as the same text)."""

from __future__ import annotations

import pytest

from bench import scanner as bench
from scanner_app import Decoder
from scanner_app.decode import to_gray, zxing

from ..conftest import shared_data


def _lost(items: list[bench.Item]) -> tuple[int, list[str]]:
    """How many images zxing-cpp alone reads, and which of those the pipeline does not."""
    pipeline = Decoder(retry="always")
    read, lost = 0, []
    for image, expected, label in items:
        if bench.matches(zxing(to_gray(image))[0], expected):
            read += 1
            if not bench.matches(pipeline.decode(image).text, expected):
                lost.append(label)
    return read, lost


def test_pipeline_reads_every_photograph_zxing_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "BLACKBOX", shared_data("qr", "zxing-blackbox"))
    items = bench.blackbox_set()
    read, lost = _lost(items)
    assert len(items) == 179 and read >= 160
    assert lost == []


def test_pipeline_reads_every_hard_synthetic_frame_zxing_reads() -> None:
    read, lost = _lost(list(bench.synthetic_set(bench.bench_code())))
    assert read >= 140 and lost == []


@pytest.mark.slow
def test_pipeline_reads_every_phone_screen_frame_zxing_reads() -> None:
    items = list(bench.phone_set(bench.bench_code()))
    read, lost = _lost(items)
    assert len(items) == bench.PHONE_PER_CATEGORY * 10 and read >= len(items) // 2
    assert lost == []


def test_every_benchmark_set_is_covered_here() -> None:
    """A set added to the benchmark needs its test above."""
    assert set(bench.image_sets(bench.bench_code())) == {"blackbox", "synthetic", "phone"}

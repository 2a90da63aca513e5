"""Prometheus text exposition (format 0.0.4) of a few counters and one latency histogram per endpoint."""

from __future__ import annotations

import bisect
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Plain in-process counters: cheap enough to update on every request of a single worker."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], float] = defaultdict(float)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)

    def inc(self, name: str, label: str = "", by: float = 1.0) -> None:
        self.counters[(name, label)] += by

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        counts = self._hist.get(endpoint)
        if counts is None:
            counts = self._hist[endpoint] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self._sum[endpoint] += seconds
        self.counters[("suishenma_http_responses_total", f'endpoint="{endpoint}",code="{status}"')] += 1
        if status >= 500:
            self.counters[("suishenma_http_errors_total", f'endpoint="{endpoint}"')] += 1

    def render(self) -> str:
        lines = [
            "# HELP suishenma_codes_minted_total Codes signed, by type.",
            "# TYPE suishenma_codes_minted_total counter",
            "# HELP suishenma_scan_records_received_total Kiosk verification records received, by outcome.",
            "# TYPE suishenma_scan_records_received_total counter",
            "# HELP suishenma_http_responses_total HTTP responses by endpoint and status code.",
            "# TYPE suishenma_http_responses_total counter",
            "# HELP suishenma_http_errors_total HTTP responses with a 5xx status.",
            "# TYPE suishenma_http_errors_total counter",
        ]
        for (name, label), value in sorted(self.counters.items()):
            lines.append(f"{name}{{{label}}} {value:g}" if label else f"{name} {value:g}")
        lines += [
            "# HELP suishenma_http_request_seconds Request latency by endpoint.",
            "# TYPE suishenma_http_request_seconds histogram",
        ]
        for endpoint, counts in sorted(self._hist.items()):
            running = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'suishenma_http_request_seconds_bucket{{endpoint="{endpoint}",le="{le}"}} {running}')
            lines.append(f'suishenma_http_request_seconds_sum{{endpoint="{endpoint}"}} {self._sum[endpoint]:.6f}')
            lines.append(f'suishenma_http_request_seconds_count{{endpoint="{endpoint}"}} {running}')
        return "\n".join(lines) + "\n"

"""Child process for the crash tests: syncs or verifies in a loop until the parent kills it with SIGKILL."""

from __future__ import annotations

import sys

from verifier import HttpxFetcher, Verifier


def main() -> None:
    mode, state, now = sys.argv[1], sys.argv[2], int(sys.argv[3])  # the test's instant, its clock
    v = Verifier.open(state, fetcher=HttpxFetcher(timeout=2.0, attempts=1, clock=lambda: float(now)), now=now)
    print("ready", flush=True)
    if mode == "sync":
        while True:
            v.sync(now=now)
    code, n = sys.argv[4], 0
    while True:
        v.verify(code, now=now)
        n += 1
        print(n, flush=True)  # printed only after verify returned: this record is acknowledged


if __name__ == "__main__":
    main()

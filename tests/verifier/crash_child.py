"""Child process for the crash tests: syncs or verifies in a loop until the parent kills it with SIGKILL."""

from __future__ import annotations

import sys
import time

from verifier import HttpxFetcher, Verifier


def main() -> None:
    mode, state = sys.argv[1], sys.argv[2]
    v = Verifier.open(state, fetcher=HttpxFetcher(timeout=2.0, attempts=1))
    print("ready", flush=True)
    if mode == "sync":
        while True:
            v.sync()
    code, n = sys.argv[3], 0
    while True:
        v.verify(code, now=time.time())
        n += 1
        print(n, flush=True)  # printed only after verify returned: this record is acknowledged


if __name__ == "__main__":
    main()

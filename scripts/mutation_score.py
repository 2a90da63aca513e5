"""Print the mutation score of the last ``mutmut run`` (scripts/mutation), per module and in total.

Reads ``mutmut results --all true`` (one ``<module>.<function>__mutmut_<n>: <status>`` line per
mutant) in the current directory. The score is killed / (killed + survived): timeouts and
mutants no test reaches are counted and shown, but left out of it. The last line is
``mutation score: NN.N% (K killed of N)``.

Usage: .venv/bin/python scripts/mutation_score.py [RESULTS_FILE]   (default: ask mutmut)
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

COLUMNS = ("killed", "survived", "timeout", "no tests")


def read_results(argv: list[str]) -> str:
    """The text of ``mutmut results --all true``, or of the file named on the command line."""
    if argv:
        return Path(argv[0]).read_text("utf-8")
    cmd = [sys.executable, "-m", "mutmut", "results", "--all", "true"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def tally(text: str) -> dict[str, Counter[str]]:
    """Status counts per module (``suishenma._cbor``), from mutmut's result lines."""
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for line in text.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            by_module[name.rsplit(".", 1)[0]][status] += 1
    return by_module


def score(counts: Counter[str]) -> str:
    judged = counts["killed"] + counts["survived"]
    return f"{100 * counts['killed'] / judged:.1f}%" if judged else "n/a"


def main(argv: list[str]) -> int:
    by_module = tally(read_results(argv))
    if not by_module:
        print("no mutmut results: run scripts/mutation first", file=sys.stderr)
        return 1
    total: Counter[str] = Counter()
    print(f"{'module':<26}" + "".join(f"{c:>10}" for c in COLUMNS) + f"{'other':>8}{'score':>8}")
    for module in sorted(by_module):
        counts = by_module[module]
        total.update(counts)
        other = sum(n for status, n in counts.items() if status not in COLUMNS)
        print(f"{module:<26}" + "".join(f"{counts[c]:>10}" for c in COLUMNS) + f"{other:>8}{score(counts):>8}")
    judged = total["killed"] + total["survived"]
    print(f"mutation score: {score(total)} ({total['killed']} killed of {judged})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

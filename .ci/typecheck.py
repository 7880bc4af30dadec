"""Type-check the package with mypy against a baseline that may only shrink.

    python .ci/typecheck.py            # exit 0: no error beyond the baseline, none of it fixed
    python .ci/typecheck.py --update   # rewrite the baseline from today's errors (to shrink it)

The baseline (`.ci/mypy-baseline.txt`) lists the errors accepted today, one per line as
`path: [code] message` (no line numbers, so that moving code does not change it). A new error
fails the check; so does a baseline entry that no longer occurs, so that the baseline is shrunk
in the change that fixes it and never hides a regression later.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
LINE = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*?)\s+\[(?P<code>[\w-]+)\]$")


def current_errors() -> Counter[str]:
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml")])
    if status not in (0, 1) or stderr.strip():
        sys.exit(f"mypy could not run (exit {status}):\n{stderr}{stdout}")
    found: Counter[str] = Counter()
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            found[f"{m['path']}: [{m['code']}] {m['message']}"] += 1
    return found


def main(argv: list[str]) -> int:
    found = current_errors()
    if "--update" in argv:
        BASELINE.write_text("".join(f"{e}\n" for e in sorted(found.elements())))
        print(f"baseline: {sum(found.values())} error(s) written to {BASELINE.relative_to(ROOT)}")
        return 0
    accepted = (
        Counter(line for line in BASELINE.read_text().splitlines() if line.strip())
        if BASELINE.exists()
        else Counter()
    )
    new = found - accepted
    fixed = accepted - found
    for e in sorted(new.elements()):
        print(f"new type error: {e}")
    for e in sorted(fixed.elements()):
        print(f"fixed, remove from the baseline: {e}")
    print(
        f"mypy: {sum(found.values())} error(s), baseline {sum(accepted.values())}, "
        f"new {sum(new.values())}, fixed {sum(fixed.values())}"
    )
    if new or fixed:
        print("run `python .ci/typecheck.py --update` once the new errors are fixed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

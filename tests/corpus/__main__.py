"""``python -m tests.corpus DIR``: build the bad-input corpus into DIR and print what each case expects."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.corpus import build_corpus


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.corpus DIR", file=sys.stderr)
        return 2
    root = Path(argv[0])
    if root.exists() and any(root.iterdir()):
        print(f"error: {root}: not empty. Give a new or empty folder.", file=sys.stderr)
        return 1
    cases = build_corpus(root)
    for c in cases:
        want = "ok" if c.expect == "ok" else f"error /{c.message}/"
        print(f"{c.kind:10} {c.name:32} {want:60} {c.path.relative_to(root)}")
    print(f"{len(cases)} cases in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

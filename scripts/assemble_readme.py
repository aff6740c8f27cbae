"""Build README.md from docs/_readme_head.md and the per-part sections in docs/ (run after editing them)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["default_model.md", "runtime.md", "export.md", "train.md", "train_data.md", "benchmarks.md"]


def main() -> None:
    docs = ROOT / "docs"
    head = (docs / "_readme_head.md").read_text()
    toc = "\n".join(f"- [{p.read_text().splitlines()[0].lstrip('# ').strip()}](docs/{p.name})"
                    for p in (docs / n for n in PARTS) if p.exists())
    body = []
    for name in PARTS:
        p = docs / name
        if p.exists():
            text = p.read_text().replace("](demo_side_by_side.png)", "](docs/demo_side_by_side.png)")
            text = text.replace("](../benchmarks/", "](benchmarks/")
            body.append(text.strip() + "\n")
    out = head.rstrip() + "\n\n## Contents\n" + toc + "\n\n" + "\n".join(body)
    (ROOT / "README.md").write_text(out)


if __name__ == "__main__":
    main()

"""What ships cites what its users can read: the paper by arXiv id, an external source by name, never the
project's private notes (PAPER.md) or its issue numbers, which no user can see."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = re.compile(r"PAPER\.md|\bissues? ?#?\d+", re.IGNORECASE)


def shipped_text_files():
    yield ROOT / "README.md"
    for folder in ("vfbench", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in {".py", ".md", ".sh", ".yaml", ".yml", ".txt", ".toml", ".html", ".js", ".css"}:
                yield path


def test_no_citation_a_user_cannot_follow():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}"
            for path in shipped_text_files()
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if PRIVATE.search(line)]
    assert not hits, "cite arXiv:2312.07395 (figure/table) or the external source instead:\n" + "\n".join(hits)


def test_the_pattern_catches_what_it_is_for():
    for text in ("PAPER.md §4", "(issue #8)", "issue 9's example", "Issue 2: the sweep", "issues 4"):
        assert PRIVATE.search(text), text
    for text in ("arXiv:2312.07395, Fig 3", "the issue's target", "pytorch#195460", "an issue with 2 cores"):
        assert not PRIVATE.search(text), text

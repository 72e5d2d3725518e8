"""Every path the code, tests and docs cite (app/…, workers/…, docs/…, tests/…) names a file that exists.

A comment that points at a moved or deleted module sends a reader nowhere; this keeps citations honest.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.env import ROOT

#: Top-level folders whose paths are checked when cited.
CITED_ROOTS = ("app", "workers", "docs", "tests", "bench", "scripts", "extension", "migrations")
#: Where citations are looked for: the repository's own text, not its dependencies or build output.
SCANNED = ("app", "workers", "docs", "tests", "bench", "scripts", "extension", "migrations")
SCANNED_FILES = ("README.md", ".env.example", "Procfile", "pyproject.toml", "docker-compose.yml", "Dockerfile")
SUFFIXES = frozenset({".py", ".md", ".js", ".html", ".css", ".json", ".toml", ".yml", ".yaml", ".txt", ".sh", ""})
SKIPPED_PARTS = frozenset({"node_modules", "__pycache__", "dist", "build"})
#: Files a test writes itself (tests/e2e/test_packaging.py checks that front-end files ship in the wheel).
MADE_BY_TESTS = frozenset({"app/templates/probe.html", "app/web/static/probe.js"})

_CITATION = re.compile(r"(?<![\w./-])((?:" + "|".join(CITED_ROOTS) + r")/[\w./-]*\w)")


def _scanned_files() -> list[Path]:
    """The repository's text files that may cite paths."""
    files = [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_PARTS & set(path.parts):
                files.append(path)
    return files


def _citations(text: str) -> set[str]:
    """Paths cited in a text; placeholders such as app/brokers/<name>/ and globs are not paths."""
    found = set()
    for match in _CITATION.finditer(text):
        after = text[match.end() : match.end() + 2]
        if after[:1] in ("<", "*", "{") or after in ("/<", "/*", "/{"):
            continue
        found.add(match.group(1).rstrip("."))
    return found


def test_every_cited_path_exists() -> None:
    """A citation names a file or folder of this repository."""
    missing: dict[str, set[str]] = {}
    for path in _scanned_files():
        if path == Path(__file__):
            continue  # its own examples
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for cited in _citations(text):
            if not (ROOT / cited).exists() and cited not in MADE_BY_TESTS:
                missing.setdefault(cited, set()).add(str(path.relative_to(ROOT)))
    assert not missing, "cited paths that do not exist:\n" + "\n".join(
        f"  {cited} (in {', '.join(sorted(where))})" for cited, where in sorted(missing.items())
    )


def test_the_check_sees_a_missing_path() -> None:
    """The citation pattern finds paths in prose and code, and leaves placeholders alone."""
    text = "see app/ingest.py and `docs/pipeline.md`; app/brokers/<name>/spec.py is a placeholder, tests/*.py a glob"
    assert _citations(text) == {"app/ingest.py", "docs/pipeline.md"}

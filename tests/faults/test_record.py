"""The record in docs/reliability.md stays true to the tests it names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECORD = REPO / "docs" / "reliability.md"
COVERED = [REPO / "tests" / "test_properties.py", *REPO.glob("tests/faults/test_*.py")]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _named_in_record() -> set[tuple[str, str]]:
    text = RECORD.read_text(encoding="utf-8")
    return set(re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)", text))


def test_record_names_only_tests_that_exist() -> None:
    """Every file::test in docs/reliability.md is a test in that file."""
    for path, name in _named_in_record():
        assert name in _tests_in(REPO / path), f"{path}::{name} is gone"


def test_record_names_every_fault_and_property_test() -> None:
    """Every fault and property test appears in docs/reliability.md."""
    named = _named_in_record()
    for path in COVERED:
        relative = path.relative_to(REPO).as_posix()
        if relative == "tests/faults/test_record.py":
            continue
        for name in _tests_in(path):
            assert (relative, name) in named, f"{relative}::{name} is not recorded"

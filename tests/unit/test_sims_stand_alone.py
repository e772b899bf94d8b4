"""The simulators and the app share no code (sandbox/sims/__init__.py says why): checked on the imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    ("tree", "forbidden"),
    [("sandbox/sims", "shared"), ("shared", "sandbox"), ("functions", "sandbox")],
    ids=["simulators-import-no-app", "app-imports-no-simulator", "functions-import-no-simulator"],
)
def test_one_side_never_imports_the_other(tree: str, forbidden: str) -> None:
    paths = sorted((ROOT / tree).rglob("*.py"))
    assert paths, f"no modules under {tree}"
    found = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in paths
        for name in _imported(path)
        if name == forbidden or name.startswith(forbidden + ".")
    )
    assert not found, f"{tree} imports {forbidden}: {found}"

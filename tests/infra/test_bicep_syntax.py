"""Every Bicep file parses with the tree-sitter-bicep grammar (no ERROR or MISSING node), and the
module graph is whole: every module main.bicep calls exists, and every file under infra/ is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra import INFRA, MAIN, BicepFile, Infra, bicep_files, parser, rel


def syntax_errors(source: bytes, where: str) -> list[str]:
    tree = parser().parse(source)
    problems = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line, column = node.start_point
            snippet = source.splitlines()[line].decode(errors="replace").strip() if source else ""
            what = f"missing {node.type!r}" if node.is_missing else "syntax error"
            problems.append(f"{where}:{line + 1}:{column + 1}: {what}: {snippet}")
            if node.is_error:
                continue  # one report per broken region
        stack.extend(node.children)
    return sorted(problems)


def test_infra_has_the_templates() -> None:
    assert MAIN.is_file(), "infra/main.bicep is missing"
    assert len(bicep_files()) > 1, "expected modules under infra/"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: rel(p))
def test_bicep_file_parses(path: Path) -> None:
    problems = syntax_errors(path.read_bytes(), rel(path))
    assert not problems, "Bicep syntax errors:\n" + "\n".join(problems)


def test_the_checker_reports_file_and_line() -> None:
    broken = b"param a string\nresource r 'Microsoft.Web/sites@2024-04-01' = {\n  name: 'x'\n  kind: \n"
    problems = syntax_errors(broken, "broken.bicep")
    assert problems, "the grammar accepted a truncated resource"
    assert all(p.startswith("broken.bicep:") for p in problems)


def test_every_module_exists_and_every_file_is_used() -> None:
    missing = []
    for path in bicep_files():
        file = BicepFile(path)
        for module in file.of_kind("module"):
            target = (path.parent / module.type_string).resolve()
            if not target.is_file():
                missing.append(f"{file.where(module.node)}: module {module.type_string} does not exist")
    assert not missing, "\n".join(missing)
    used = {instance.file.path for instance in Infra().instances}
    orphans = [rel(p) for p in bicep_files() if p.resolve() not in used]
    assert not orphans, f"Bicep files under {rel(INFRA)} that main.bicep never deploys: {orphans}"

"""requirements.txt floors admit no release that lacks what the app imports.

Azure installs the newest release that satisfies each range, but a partner's pinned build or a
cached wheel may sit on the floor: a floor below the first release with a name we import means an
app that fails at import time. Each entry names when the symbol first shipped (the package's
changelog / the wheel's ``__init__``).
"""

from __future__ import annotations

import ast
import re

from tests.infra import REPO

# package -> {imported name: first release that exports it}
FIRST_RELEASE = {
    "pydantic_settings": {"BaseSettings": "2.0.0", "SettingsConfigDict": "2.0.0", "NoDecode": "2.7.0"},
}


def _floor(requirement: str) -> tuple[int, ...]:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(rf"^{re.escape(requirement)}>=([0-9.]+)", line.strip(), re.IGNORECASE)
        if match:
            return _version(match.group(1))
    raise AssertionError(f"requirements.txt has no floor for {requirement}")


def _version(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _imported_names(package: str) -> set[str]:
    names: set[str] = set()
    for path in [*(REPO / "shared").rglob("*.py"), *(REPO / "functions").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == package:
                names.update(alias.name for alias in node.names)
    return names


def test_floors_admit_only_releases_with_every_imported_name() -> None:
    for package, first in FIRST_RELEASE.items():
        used = _imported_names(package)
        unknown = used - first.keys()
        assert not unknown, f"add the first release of {sorted(unknown)} from {package} to FIRST_RELEASE"
        floor = _floor(package.replace("_", "-"))
        too_new = {name: first[name] for name in used if _version(first[name]) > floor}
        assert not too_new, f"requirements.txt {package} floor {floor} predates {too_new}"

""".funcignore keeps tests, the sandbox, infra, tooling and dev files out of the deployment
package, and keeps in everything the function app loads.

The patterns are matched the way .gitignore patterns are (which is how Core Tools and azd read
.funcignore), restricted to the subset this file uses: `name`, `dir/`, `/anchored`, globs with
`*`, `?` and `[...]`. Anything else (negation, `**`) fails the test rather than be guessed.
"""

from __future__ import annotations

import fnmatch
import subprocess
from pathlib import Path

import pytest

from tests.infra import REPO, function_app_facts, rel

FUNCIGNORE = REPO / ".funcignore"
RUNTIME_FILES = ("function_app.py", "host.json", "requirements.txt")
RUNTIME_DIRS = ("functions", "shared")
MUST_EXCLUDE = (
    "tests/",
    "tests/unit/test_mapping.py",
    "sandbox/",
    "sandbox/host.py",
    "infra/",
    "infra/main.bicep",
    "bench/",
    "bench/run.py",
    "node_modules/",
    "node_modules/azurite/package.json",
    ".venv/",
    ".venv/bin/python",
    "local.settings.json",
    "local.settings.example.json",
    "requirements-dev.txt",
    "package.json",
    "package-lock.json",
    "Makefile",
    "pyproject.toml",
    ".ci/run",
    "README.md",
    "azure.yaml",
    "__pycache__/",
    "shared/__pycache__/config.cpython-311.pyc",
)


def patterns() -> list[tuple[int, str]]:
    found = []
    for number, raw in enumerate(FUNCIGNORE.read_text().splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            found.append((number, line))
    return found


def check_supported(pattern: str) -> None:
    if pattern.startswith("!") or "**" in pattern or "\\" in pattern:
        raise AssertionError(f"unsupported .funcignore pattern {pattern!r}: extend the test's matcher first")


def ignored_by(path: str, rules: list[tuple[int, str]]) -> str | None:
    """`.funcignore:<line> <pattern>` that excludes ``path`` (``dir/`` marks a directory), else None."""
    is_dir = path.endswith("/")
    parts = path.strip("/").split("/")
    for number, pattern in rules:
        check_supported(pattern)
        dir_only = pattern.endswith("/")
        body = pattern.strip("/")
        anchored = pattern.startswith("/") or "/" in body
        for depth in range(1, len(parts) + 1):
            names_a_dir = depth < len(parts) or is_dir
            if dir_only and not names_a_dir:
                continue
            candidate = "/".join(parts[:depth]) if anchored else parts[depth - 1]
            if fnmatch.fnmatchcase(candidate, body):
                return f"{rel(FUNCIGNORE)}:{number} {pattern}"
    return None


def repo_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore: what a deployment would see."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted({line for line in done.stdout.splitlines() if (REPO / line).is_file()})


@pytest.mark.parametrize("path", MUST_EXCLUDE)
def test_dev_and_test_files_are_excluded(path: str) -> None:
    assert ignored_by(path, patterns()), f"{rel(FUNCIGNORE)}: {path} would be deployed"


def test_everything_the_app_loads_is_deployed() -> None:
    rules = patterns()
    loaded = [
        rel(Path(module))
        for module in function_app_facts()["modules"]
        if Path(module).is_relative_to(REPO) and not Path(module).is_relative_to(REPO / ".venv")
    ]
    assert "function_app.py" in loaded
    required = set(loaded) | set(RUNTIME_FILES)
    required |= {f for f in repo_files() if f.split("/", 1)[0] in RUNTIME_DIRS and "__pycache__" not in f}
    excluded = {path: ignored_by(path, rules) for path in sorted(required)}
    problems = [f"{why}: excludes {path}, which the app needs" for path, why in excluded.items() if why]
    assert not problems, "\n".join(problems)


def test_the_package_is_only_the_app() -> None:
    rules = patterns()
    package = [f for f in repo_files() if not ignored_by(f, rules)]
    extra = [f for f in package if f not in RUNTIME_FILES and f.split("/", 1)[0] not in RUNTIME_DIRS]
    assert not extra, f"{rel(FUNCIGNORE)}: these files would be deployed too: {extra}"
    assert set(RUNTIME_FILES) <= set(package)


def test_the_matcher_follows_gitignore_rules() -> None:
    rules = [(1, "tests"), (2, "build/"), (3, "/top.txt"), (4, "*.md"), (5, "docs/*.txt")]
    assert ignored_by("tests/a.py", rules)
    assert ignored_by("pkg/tests/a.py", rules)  # a bare name matches at any depth
    assert ignored_by("build/", rules)
    assert not ignored_by("build", rules)  # `build/` only matches a directory
    assert ignored_by("top.txt", rules)
    assert not ignored_by("pkg/top.txt", rules)  # a leading slash anchors
    assert ignored_by("shared/notes.md", rules)
    assert ignored_by("docs/a.txt", rules)
    assert not ignored_by("shared/config.py", rules)

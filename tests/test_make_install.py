"""`make test` on a fresh machine installs what the whole suite needs, the browser of the web tests included,
so that it runs what CI runs: .ci/run is `make test`, `make test-slow` and `make lint`, nothing before them."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def planned(target: str) -> list[str]:
    """The commands `make TARGET` would run on a machine where the install step has not run yet."""
    dry_run = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return dry_run.stdout.splitlines()


def test_make_test_installs_the_browser_before_it_runs_the_suite() -> None:
    commands = planned("test")
    browser = next(i for i, c in enumerate(commands) if c == "bash scripts/install-browser.sh")
    sandbox = next(i for i, c in enumerate(commands) if c == "sh scripts/install-system-deps.sh")
    suite = next(i for i, c in enumerate(commands) if "-m pytest" in c)
    assert sandbox < suite and browser < suite


def test_ci_runs_make_test_the_slow_suites_and_make_lint_only() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["make test", "make test-slow", "make lint"]


def test_make_test_leaves_out_only_the_slow_suites_and_make_test_slow_runs_them() -> None:
    fast = next(c for c in planned("test") if "-m pytest" in c)
    slow = next(c for c in planned("test-slow") if "-m pytest" in c)
    assert '-m "not slow"' in fast and "-m slow" in slow

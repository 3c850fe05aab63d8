"""tools.cli.output.progress_bars, in a real process, piped and on a pseudo-terminal: a finished run leaves its bars'
last state; a failed one (an error or Ctrl-C) leaves no bar, only its `stopped` line, so the error printed after it
is the last thing on stderr. tests/test_upload_errors.py shows the same through `leadersboard submit`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.terminal import run_on_terminal, screen_lines

pytestmark = pytest.mark.timeout(120)

PROGRAM = """
import sys
from tools.cli.output import err, progress_bars

outcome = sys.argv[1]
try:
    with progress_bars(stopped=lambda bars: f"stopped after {bars.tasks[0].completed:.0f} bytes") as bars:
        task = bars.add_task("data.zip", total=100)
        bars.advance(task, 40)
        bars.refresh()  # drawn at least once, whatever the refresh thread did
        if outcome == "error":
            raise TimeoutError("the store did not answer")
        if outcome == "interrupt":
            raise KeyboardInterrupt
        bars.advance(task, 60)
except TimeoutError as exc:
    err.print(f"[red]error[/red]: {exc}")
    sys.exit(2)
except KeyboardInterrupt:
    sys.exit(130)
err.print("sent")
"""

RICH_ENV = ("FORCE_TERMINAL", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")  # rich decides by itself


def both_ways(outcome: str) -> list[tuple[int, list[str]]]:
    """(exit code, the non-blank stderr lines) of PROGRAM piped, then on a terminal (the lines left on screen)."""
    env = {k: v for k, v in os.environ.items() if k not in RICH_ENV} | {"COLUMNS": "120", "TERM": "xterm-256color"}
    argv = [sys.executable, "-c", PROGRAM, outcome]
    piped = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    shown = run_on_terminal(argv, env, timeout_s=60)
    assert "━" in shown.terminal, shown.terminal  # the bar was drawn on the terminal
    assert "Traceback" not in piped.stderr + shown.terminal
    return [
        (piped.returncode, [line.rstrip() for line in piped.stderr.splitlines() if line.strip()]),
        (shown.returncode, screen_lines(shown.terminal)),
    ]


def test_finished_bars_stay_above_what_follows() -> None:
    for code, lines in both_ways("done"):
        assert code == 0 and len(lines) == 2, lines
        assert lines[0].startswith("data.zip ") and " 100% " in lines[0] and lines[1] == "sent", lines


@pytest.mark.parametrize(("outcome", "code", "after"), [("error", 2, ["error: the store did not answer"]),
                                                        ("interrupt", 130, [])])  # fmt: skip
def test_a_failure_replaces_the_bars_by_one_line(outcome: str, code: int, after: list[str]) -> None:
    for returncode, lines in both_ways(outcome):
        assert returncode == code and lines == ["stopped after 40 bytes", *after], lines

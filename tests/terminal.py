"""A command run with its stderr on a real pseudo-terminal (so rich draws live progress bars there), and the lines
a person would see on that terminal once it ended: the control sequences rich writes replayed on a screen.

Only the sequences rich's live display uses are understood (carriage return, newline, cursor up, erase line,
cursor shown/hidden, colours); any other one fails the test, so a screen cannot be read wrongly in silence.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from dataclasses import dataclass

__all__ = ["Ran", "run_on_terminal", "screen_lines"]

_SEQUENCE = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    terminal: str  # what the command wrote on the terminal (stderr), control sequences included


def run_on_terminal(argv: list[str], env: dict[str, str], timeout_s: float) -> Ran:
    """Run `argv` with stderr on a pseudo-terminal (stdout a pipe) and collect both."""
    leader, follower = pty.openpty()
    written: list[bytes] = []

    def drain() -> None:  # read while it runs: a full terminal buffer would block the command's writes
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every end of the follower is closed (the command exited)
                return
            if not chunk:
                return
            written.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=follower, timeout=timeout_s, check=False)  # fmt: skip
    finally:
        os.close(follower)  # the command's end of it is closed too: the reader meets EIO once it read everything
        reader.join(timeout=30)
        os.close(leader)
    return Ran(done.returncode, done.stdout.decode(), b"".join(written).decode())


def screen_lines(written: str) -> list[str]:
    """The terminal's non-blank lines after `written` was drawn on it, colours left out."""
    lines, row, col = [""], 0, 0
    position = 0
    for found in [*_SEQUENCE.finditer(written), None]:
        end = found.start() if found else len(written)
        for char in written[position:end]:
            if char == "\r":
                col = 0
            elif char == "\n":
                row += 1
                lines += [""] * (row + 1 - len(lines))
            else:
                line = lines[row].ljust(col)
                lines[row] = line[:col] + char + line[col + 1 :]
                col += 1
        if found is None:
            break
        position = found.end()
        argument, command = found.groups()
        if command == "A":  # cursor up
            row = max(0, row - int(argument or "1"))
        elif (argument, command) == ("2", "K"):  # erase the whole line
            lines[row] = ""
        elif command != "m" and (argument, command) not in {("?25", "l"), ("?25", "h")}:  # colours; the cursor
            raise AssertionError(f"a control sequence the test does not understand: {found.group()!r}")
    return [line.rstrip() for line in lines if line.strip()]

"""CPU seconds spent by the processes of this bench's tree (the stack, Chromium), for the upload benches."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from tools.stack.proc_info import process_tree

__all__ = ["cpu_by_name", "spent"]


def cpu_by_name() -> dict[str, float]:
    """CPU seconds so far of this bench's process tree (the stack, Chromium): by command name, this
    process as "bench", Chromium by thread name (its work spans processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: defaultdict[str, float] = defaultdict(float)
    for pid in process_tree([os.getpid()]):
        proc = Path(f"/proc/{pid}")
        try:
            comm = (proc / "comm").read_text().strip()
            if comm == "chromium":
                for task in (proc / "task").iterdir():
                    name, fields = _stat(task / "stat")
                    found["chromium:" + name] += (int(fields[11]) + int(fields[12])) / tick
            else:
                _, fields = _stat(proc / "stat")
                found["bench" if pid == os.getpid() else comm] += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            continue
    return found


def _stat(path: Path) -> tuple[str, list[str]]:
    text = path.read_text()
    return text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()


def spent(before: dict[str, float], after: dict[str, float], *, by_thread: bool = False) -> dict[str, float]:
    """CPU seconds between two `cpu_by_name()`, by name; Chromium's threads summed as "chromium" unless
    `by_thread`."""
    found: defaultdict[str, float] = defaultdict(float)
    for name, seconds in after.items():
        merged = "chromium" if name.startswith("chromium:") and not by_thread else name
        found[merged] += seconds - before.get(name, 0.0)
    return {name: round(seconds, 1) for name, seconds in found.items() if seconds >= 0.1}

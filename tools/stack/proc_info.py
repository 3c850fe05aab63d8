"""What /proc says about the stack's processes: their trees, memory (PSS) and CPU time (psutil is not a
dependency). `leadersboard status` and bench/footprint.py read the same figures."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["cpu_seconds", "pid_alive", "process_tree", "pss_bytes"]


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(roots: Iterable[int]) -> set[int]:
    """`roots` and every live descendant of them (by parent pid)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            children.setdefault(int(_stat_fields(int(entry.name))[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found and Path(f"/proc/{pid}").exists():
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def pss_bytes(pids: Iterable[int]) -> int:
    """Proportional set size summed over `pids`: shared pages count once across them, unlike RSS."""
    total_kib = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:  # exited meanwhile, or not ours to read
            continue
        total_kib += next((int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")), 0)
    return total_kib * 1024


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time used so far by `pids`."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except (OSError, IndexError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False

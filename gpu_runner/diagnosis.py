"""The reason shown for a job that exited with an error: the likely cause first, then the end of its output.

Every reason is listed in docs/failure-reasons.md with what to do about it.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

from gpu_runner.sandbox import Limits

__all__ = ["Cause", "failure_reason", "find_cause", "limit_reason"]

TAIL_LINES = 15
GIB = 1024**3


@dataclass(frozen=True)
class Cause:
    pattern: re.Pattern[str]
    explain: str
    """A format string; may use {memory}, {processes}, {files}, {file_size}."""


CAUSES = (
    Cause(
        re.compile(r"LocalEntryNotFoundError|OfflineModeIsEnabled|offline mode is enabled"),
        "pretrained weights are not available offline (jobs have no network): set pre_trained: false "
        "in the model's init_args, or ask an admin to provision the weights into the weights cache",
    ),
    Cause(
        re.compile(r"MemoryError|can't allocate memory|Cannot allocate memory|std::bad_alloc|\[Errno 12\]"),
        "memory limit: the job ran out of memory (the limit is {memory} per process)",
    ),
    Cause(
        re.compile(
            r"BlockingIOError: \[Errno 11\]|can't start new thread|fork: Resource temporarily unavailable"
            r"|pthread_create.*(?:Resource temporarily unavailable|EAGAIN)"
        ),
        "process limit: the job could not start another process or thread (the limit is {processes})",
    ),
    Cause(
        re.compile(r"File too large|\[Errno 27\]"),
        "file size limit: the job tried to write a file larger than {file_size}",
    ),
    Cause(
        re.compile(r"Too many open files|\[Errno 24\]"),
        "open files limit: the job had more than {files} files open at once",
    ),
)


def find_cause(tail: str, limits: Limits) -> str | None:
    for cause in CAUSES:
        if cause.pattern.search(tail):
            return cause.explain.format(
                memory=_size(limits.memory_bytes) if limits.memory_bytes else "unlimited",
                processes=f"{limits.max_processes} processes and threads",
                files=limits.max_open_files,
                file_size=_size(limits.max_file_bytes),
            )
    return None


def failure_reason(exit_code: int | None, killed_by: int | None, tail: str, limits: Limits) -> str:
    """`<cause>; exit code N (killed by SIGX); last lines of the log:\n...`."""
    cause = find_cause(tail, limits)
    if cause is None and killed_by == signal.SIGKILL:
        cause = f"killed by {_signal_name(killed_by)}: most often the machine ran out of memory"
    elif cause is None and killed_by == signal.SIGXFSZ:
        cause = find_cause("File too large", limits)
    return f"{cause + '; ' if cause else ''}{_exit_and_tail(exit_code, killed_by, tail)}"


def limit_reason(over_limit: str, exit_code: int | None, killed_by: int | None, tail: str) -> str:
    """The reason of a job that went over its per-job memory or disk limit: what to do, then its log's end."""
    if over_limit.startswith("memory"):
        advice = (
            "the job's processes together (with files in /tmp and /dev/shm) used all of it and the kernel killed "
            "one; use less memory (smaller batches, fewer data loader workers) or ask an admin for a higher limit"
        )
    else:
        advice = (
            "the working, output and TMPDIR directories together may hold no more; "
            "write less (fewer checkpoints, smaller images) or ask an admin for a higher limit"
        )
    return f"{over_limit}: {advice}; {_exit_and_tail(exit_code, killed_by, tail)}"


def _exit_and_tail(exit_code: int | None, killed_by: int | None, tail: str) -> str:
    code = f"exit code {exit_code}"
    if killed_by is not None:
        code += f" (killed by {_signal_name(killed_by)})"
    lines = "\n".join(tail.splitlines()[-TAIL_LINES:])
    return f"{code}; last lines of the log:\n{lines}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _size(n: int) -> str:
    return f"{n / GIB:g} GiB" if n >= GIB else f"{n / 1024**2:g} MiB"

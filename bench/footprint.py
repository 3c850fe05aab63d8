"""The idle local stack's memory: PSS summed over every process `leadersboard up` starts, just after start and
after many small jobs.

    .venv/bin/python bench/footprint.py --jobs 100
    .venv/bin/python bench/footprint.py --jobs 20 --large-mib 1024 --after-large-s 300 [--weed-limit 256MiB]

The stack is the one `make up` runs (frontend included), on free ports in a temporary directory. Each job is
a trivial main.py that writes metrics.json, submitted through the real path (Client.submit: presigned
upload, manifest, bridge, dispatcher, sandboxed runner, MLflow run). After start and after the jobs, the bench
waits until the stack is idle (its processes used less than `--idle-cpu` of one core over 10 s), then sums
the PSS (/proc/PID/smaps_rollup) of each service's process tree. PSS splits shared pages between the
processes that map them, so the sum is what the stack really holds, unlike summed RSS.

--large-mib N then submits one more job carrying a random N MiB file (the trivial main.py ignores it: the
upload, the store's copy and the runner's download are what costs), and measures once idle and again every
--after-large-s / 5 seconds until --after-large-s: the store keeps some of the heap a large transfer grew
for minutes (tools/stack/services.py, SEAWEED_MEMORY_LIMIT).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import local_stack  # noqa: E402
from leadersboard.client import Client  # noqa: E402
from leadersboard.models.records import JobStatus  # noqa: E402
from tools.stack import services  # noqa: E402
from tools.stack.proc_info import cpu_seconds, process_tree, pss_bytes  # noqa: E402
from tools.stack.up import Stack  # noqa: E402

MiB = 1024 * 1024
TRIVIAL_MAIN = """import argparse, json, pathlib
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
out = pathlib.Path(a.output); out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"score": 0.5}}))
"""
IDLE_WINDOW_S = 10.0


def stack_pids(stack: Stack) -> set[int]:
    return process_tree(p.pid for p in stack.processes if p.alive)


def wait_idle(stack: Stack, *, idle_cpu: float, timeout_s: float) -> float:
    """Seconds waited until the stack's processes used under `idle_cpu` cores over `IDLE_WINDOW_S`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = cpu_seconds(stack_pids(stack))
        time.sleep(IDLE_WINDOW_S)
        if (cpu_seconds(stack_pids(stack)) - before) / IDLE_WINDOW_S < idle_cpu:
            return time.monotonic() - started
    raise TimeoutError(f"the stack was still busy after {timeout_s:.0f} s")


def footprint(stack: Stack) -> dict[str, Any]:
    per_service = {p.name: round(pss_bytes(process_tree([p.pid])) / MiB, 1) for p in stack.processes if p.alive}
    return {"total_mib": round(pss_bytes(stack_pids(stack)) / MiB, 1), "per_service_mib": per_service}


def run_jobs(info: dict[str, Any], submission: Path, jobs: int, batch: int) -> None:
    with Client(info["urls"]["ingest"], info["admin_token"]) as admin:
        admin.set_default_quota(per_hour=100_000, concurrent=batch)
    with Client(info["urls"]["ingest"], info["demo_token"]) as client:
        done = 0
        while done < jobs:
            ids = [client.submit([submission]) for _ in range(min(batch, jobs - done))]
            for submission_id in ids:
                record = client.wait(submission_id, poll_s=0.5, timeout_s=600)
                if record.status is not JobStatus.COMPLETED:
                    raise RuntimeError(f"job {submission_id}: {record.status} {record.error}")
            done += len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10, help="submissions in flight at a time")
    parser.add_argument("--measure-at", type=int, nargs="*", default=[], help="also measure after this many jobs")
    parser.add_argument("--idle-cpu", type=float, default=0.25, help="cores below which the stack counts as idle")
    parser.add_argument("--large-mib", type=int, default=0, help="then one job with a file this large")
    parser.add_argument("--after-large-s", type=int, default=300, help="how long to watch after the large job")
    parser.add_argument("--weed-limit", default=services.SEAWEED_MEMORY_LIMIT, help="weed's GOMEMLIMIT")
    args = parser.parse_args()
    with local_stack("lb-footprint-", weed_limit=args.weed_limit) as (root, stack, info):
        submission = root / "submission"
        submission.mkdir()
        (submission / "main.py").write_text(TRIVIAL_MAIN)
        (submission / "config.yaml").write_text("dataset: none\n")
        waited = wait_idle(stack, idle_cpu=args.idle_cpu, timeout_s=600)
        report("after start", {**footprint(stack), "idle_after_s": round(waited)})
        done = 0
        for checkpoint in sorted({*args.measure_at, args.jobs}):
            started = time.monotonic()
            run_jobs(info, submission, checkpoint - done, args.batch)
            done, jobs_s = checkpoint, time.monotonic() - started
            waited = wait_idle(stack, idle_cpu=args.idle_cpu, timeout_s=600)
            figures = {**footprint(stack), "jobs_s": round(jobs_s), "idle_after_s": round(waited)}
            report(f"after {done} jobs", figures)
        if args.large_mib:
            large_job(stack, info, submission, args)


def large_job(stack: Stack, info: dict[str, Any], submission: Path, args: argparse.Namespace) -> None:
    large = submission.parent / "large"
    large.mkdir()
    for name in ("main.py", "config.yaml"):
        (large / name).write_bytes((submission / name).read_bytes())
    with (large / "data.bin").open("wb") as handle:
        for _ in range(args.large_mib):
            handle.write(os.urandom(MiB))
    started = time.monotonic()
    run_jobs(info, large, 1, 1)
    jobs_s = time.monotonic() - started
    waited = wait_idle(stack, idle_cpu=args.idle_cpu, timeout_s=600)
    report(
        f"after a {args.large_mib} MiB job",
        {**footprint(stack), "jobs_s": round(jobs_s), "idle_after_s": round(waited)},
    )
    for _ in range(5):
        time.sleep(args.after_large_s / 5)
        waited += args.after_large_s / 5
        report(f"{waited:.0f} s after the {args.large_mib} MiB job", footprint(stack))


def report(phase: str, figures: dict[str, Any]) -> None:
    """One JSON line per phase, printed as soon as it is measured."""
    print(json.dumps({"phase": phase, **figures}), flush=True)


if __name__ == "__main__":
    main()

"""`leadersboard check PATH`: run a submission locally the way the runner does, before spending a submission.

Same layout (files copied into a fresh working directory, every zip extracted there safely with the runner's
`extract_zip`), same command (`python <entrypoint> --config <config> --output <dir>`, cwd = the working
directory), run by the runner's own `run_entrypoint` (clean environment, log cap, time limit, the runner's
sandbox when bwrap is available here: otherwise plainly, and it says so), judged with the runner's failure
reasons and its reading of metrics.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leadersboard.client import collect_files
from tools.cli.output import console, err, metrics_table, write

if TYPE_CHECKING:
    from gpu_runner.execute import ExecResult
    from gpu_runner.sandbox import Limits, Sandbox
    from gpu_runner.settings import RunnerSettings
    from gpu_runner.workspace import Workspace

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    check = sub.add_parser("check", help="run a submission locally as the runner would and validate metrics.json")
    check.add_argument("paths", nargs="+", metavar="PATH")
    check.add_argument("--entrypoint", default="main.py")
    check.add_argument("--config", default="config.yaml")
    check.add_argument("--timeout-s", type=float, help="default: the runner's job timeout")
    check.add_argument("--keep", action="store_true", help="keep the working directory and print where it is")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from gpu_runner.settings import RunnerSettings
    from gpu_runner.workspace import UnsafeArchive, Workspace, extract_zip

    files = collect_files(args.paths)
    problem = _declaration_problem(files, args.entrypoint, args.config)
    if problem:
        return _fail(problem)
    root = Path(tempfile.mkdtemp(prefix="leadersboard-check-"))
    settings = RunnerSettings(work_dir=root / "runner")
    workspace = Workspace(root / "runner" / "local-check").create()
    try:
        for name, local in files.items():
            target = workspace.work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        for name in files:
            if name.lower().endswith(".zip"):
                try:
                    extract_zip(workspace.work / name, workspace.work)
                except UnsafeArchive as exc:
                    return _fail(f"dataset rejected: {exc}")
                err.print(f"extracted {name} into the working directory")
        timeout_s = args.timeout_s or settings.job_timeout_s
        result, limits = _run(settings, workspace, args.entrypoint, args.config, timeout_s)
        return _judge(settings, workspace, args.config, result, limits, timeout_s)
    finally:
        if args.keep:
            err.print(f"working directory kept: {workspace.root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def _declaration_problem(files: dict[str, Path], entrypoint: str, config: str) -> str | None:
    """What the dispatcher would refuse before running anything."""
    for role, name in (("entrypoint", entrypoint), ("config", config)):
        if name not in files:
            return f"the {role} {name!r} is not among the files ({', '.join(sorted(files)) or 'none'})"
    if not entrypoint.endswith(".py"):
        return f"the entrypoint {entrypoint!r} is not a Python file (.py)"
    return None


def _run(settings: RunnerSettings, workspace: Workspace, entrypoint: str, config: str,
         timeout_s: float) -> tuple[ExecResult, Limits]:  # fmt: skip
    """The runner's own `run_entrypoint`, its log followed on the terminal while the job runs."""
    from gpu_runner.execute import JobLaunch, run_entrypoint
    from leadersboard.models.base import utcnow
    from leadersboard.models.records import JobRecord

    launch = JobLaunch.from_settings(settings, timeout_s=timeout_s, sandbox=_sandbox(settings))
    record = JobRecord(submission_id="local-check", user="local", entrypoint=entrypoint, config=config,
                       created_at=utcnow())  # fmt: skip
    err.print(f"running: python {entrypoint} --config {config} --output <output> (in {workspace.work})")

    async def run_and_follow() -> ExecResult:
        job = asyncio.create_task(run_entrypoint(workspace, record, launch, asyncio.Event()))
        offset = 0
        while True:
            finished = job.done()
            offset = _show_new_log(workspace.log, offset)
            if finished:
                return job.result()
            await asyncio.wait({job}, timeout=0.2)

    return asyncio.run(run_and_follow()), launch.limits


def _show_new_log(log: Path, offset: int) -> int:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    if chunk:
        write(chunk.decode(errors="replace"))
    return offset + len(chunk)


def _sandbox(settings: RunnerSettings) -> Sandbox | None:
    """The runner's sandbox when it can be set up here; otherwise None, and the user is told why."""
    from gpu_runner import sandbox as sandboxing

    try:
        sandbox = sandboxing.resolve_sandbox(settings.model_copy(update={"allow_unsandboxed": True}))
    except sandboxing.SandboxUnavailable as exc:
        sandbox, why = None, str(exc)
    else:
        why = "bwrap (bubblewrap) or prlimit is not installed"
    if sandbox is None:
        err.print(f"[yellow]note[/yellow]: not sandboxed ({why}): the job runs with your permissions and network "
                  "access, which the runner would not give it")  # fmt: skip
    else:
        err.print("sandboxed as on the runner (bubblewrap: no network, read-only system, resource limits)")
    return sandbox


def _judge(settings: RunnerSettings, workspace: Workspace, config: str, result: ExecResult, limits: Limits,
           timeout_s: float) -> int:  # fmt: skip
    """The runner's verdict: its failure reasons (gpu_runner.diagnosis) and its reading of metrics.json."""
    from gpu_runner.diagnosis import failure_reason
    from gpu_runner.results import BadMetrics, dataset_name, read_metrics
    from leadersboard.models.base import utcnow
    from leadersboard.models.records import JobRecord

    if result.timed_out:
        return _fail(f"timeout: still running after the limit of {timeout_s:.0f} s; the job was killed")
    if result.exit_code != 0:
        return _fail(failure_reason(result.exit_code, result.signal, result.tail, limits))
    if (workspace.output / "metrics.json").is_symlink():
        return _fail("metrics.json is malformed: it is a symbolic link; write a regular file")
    try:
        metrics = read_metrics(workspace.output, max_bytes=settings.max_metrics_bytes)
    except BadMetrics as exc:
        return _fail(str(exc))
    record = JobRecord(submission_id="local-check", user="local", entrypoint="", config=config, created_at=utcnow())
    dataset = dataset_name(record, metrics, workspace.work / config)
    console.print(f"[green]check passed[/green]: metrics.json is valid (dataset {dataset})")
    console.print(metrics_table(metrics.metrics))
    if metrics.params:
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in metrics.params.items()))
    return 0


def _fail(reason: str) -> int:
    err.print(f"[red]check failed[/red]: {reason}")
    return 1

"""A submission run locally the way the runner runs it, before spending a submission (`leadersboard check`).

Same layout (files copied into a fresh working directory, every zip extracted there safely with the runner's
`extract_zip`), same command (`python <entrypoint> --config <config> --output <dir>`, cwd = the working
directory), run by the runner's own `run_entrypoint` (clean environment, log cap, time limit, the runner's
sandbox when bwrap is available here: otherwise plainly, and it says so), judged by the runner's own verdict.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gpu_runner import sandbox as sandboxing
from gpu_runner.execute import ExecResult, JobLaunch, run_entrypoint
from gpu_runner.results import dataset_name
from gpu_runner.settings import RunnerSettings
from gpu_runner.verdict import Verdict, judge
from gpu_runner.workspace import UnsafeArchive, Workspace, extract_zip, is_zip
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord
from leadersboard.models.submission import entrypoint_problem, missing_declared

__all__ = ["CheckProgress", "CheckResult", "declaration_problem", "run_check"]

LOG_POLL_S = 0.2
"""How often the job's log is read for new output while it runs."""


class CheckProgress(Protocol):
    """Where a check tells what it does while it runs."""

    def step(self, line: str) -> None:
        """A step of the check: a zip extracted, the sandbox used, the command run."""

    def warn(self, line: str) -> None:
        """Something that makes the check differ from a run on the runner."""

    def output(self, text: str) -> None:
        """New output of the job (its log), as it comes."""


@dataclass(frozen=True)
class CheckResult:
    verdict: Verdict
    workspace: Workspace | None = None
    """Where the job ran (`root`, `work`, `output`, `log`; gone unless kept); None: refused before one was made."""
    dataset: str | None = None
    """The dataset the job would rank under, when it completed."""


def declaration_problem(files: Mapping[str, Path], entrypoint: str, config: str) -> str | None:
    """What the dispatcher would refuse before running anything."""
    missing = missing_declared(entrypoint, config, files)
    if missing:
        role, name = missing[0]
        return f"the {role} {name!r} is not among the files ({', '.join(sorted(files)) or 'none'})"
    return entrypoint_problem(entrypoint)


def run_check(
    files: Mapping[str, Path],
    *,
    entrypoint: str,
    config: str,
    timeout_s: float | None,
    keep: bool,
    progress: CheckProgress,
) -> CheckResult:
    """Run `files` (submission path -> local file) in a fresh temporary workspace and judge the run.

    `timeout_s` None: the runner's job timeout. `keep`: leave the workspace in place; otherwise it is removed
    before this returns (the result holds all there is to show).
    """
    problem = declaration_problem(files, entrypoint, config)
    if problem:
        return CheckResult(Verdict.failed(problem))
    root = Path(tempfile.mkdtemp(prefix="leadersboard-check-"))
    try:
        return _check_in(root, files, entrypoint=entrypoint, config=config, timeout_s=timeout_s, progress=progress)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _check_in(
    root: Path,
    files: Mapping[str, Path],
    *,
    entrypoint: str,
    config: str,
    timeout_s: float | None,
    progress: CheckProgress,
) -> CheckResult:
    settings = RunnerSettings(work_dir=root / "runner")
    workspace = Workspace(root / "runner" / "local-check").create()
    try:
        _lay_out(workspace, files, progress)
    except UnsafeArchive as exc:
        return CheckResult(Verdict.failed(f"dataset rejected: {exc}"), workspace)
    timeout_s = timeout_s or settings.job_timeout_s
    launch = JobLaunch.from_settings(settings, timeout_s=timeout_s, sandbox=_sandbox(settings, progress))
    record = JobRecord(submission_id="local-check", user="local", entrypoint=entrypoint, config=config,
                       created_at=utcnow())  # fmt: skip
    progress.step(f"running: python {entrypoint} --config {config} --output <output> (in {workspace.work})")
    result = asyncio.run(_run_and_follow(workspace, record, launch, progress))
    verdict = judge(
        result,
        workspace.output,
        timeout_s=timeout_s,
        limits=launch.limits,
        max_metrics_bytes=settings.max_metrics_bytes,
    )
    if verdict.metrics is None:
        return CheckResult(verdict, workspace)
    return CheckResult(verdict, workspace, dataset_name(record, verdict.metrics, workspace.work / config))


def _lay_out(workspace: Workspace, files: Mapping[str, Path], progress: CheckProgress) -> None:
    """The files copied into the working directory, then every zip extracted there, as on the runner."""
    for name, local in files.items():
        target = workspace.work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)
    for name in files:
        if is_zip(name):
            extract_zip(workspace.work / name, workspace.work)
            progress.step(f"extracted {name} into the working directory")


async def _run_and_follow(
    workspace: Workspace, record: JobRecord, launch: JobLaunch, progress: CheckProgress
) -> ExecResult:
    """The runner's own `run_entrypoint`, its log followed while the job runs."""
    job = asyncio.create_task(run_entrypoint(workspace, record, launch, asyncio.Event()))
    offset = 0
    while True:
        finished = job.done()
        offset = _show_new_log(workspace.log, offset, progress)
        if finished:
            return job.result()
        await asyncio.wait({job}, timeout=LOG_POLL_S)


def _show_new_log(log: Path, offset: int, progress: CheckProgress) -> int:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return offset
    if chunk:
        progress.output(chunk.decode(errors="replace"))
    return offset + len(chunk)


def _sandbox(settings: RunnerSettings, progress: CheckProgress) -> sandboxing.Sandbox | None:
    """The runner's sandbox when it can be set up here; otherwise None, and the user is told why."""
    try:
        sandbox = sandboxing.resolve_sandbox(settings.model_copy(update={"allow_unsandboxed": True}))
    except sandboxing.SandboxUnavailable as exc:
        sandbox, why = None, str(exc)
    else:
        why = "bwrap (bubblewrap) or prlimit is not installed"
    if sandbox is None:
        progress.warn(f"not sandboxed ({why}): the job runs with your permissions and network access, "
                      "which the runner would not give it")  # fmt: skip
    else:
        progress.step("sandboxed as on the runner (bubblewrap: no network, read-only system, resource limits)")
    return sandbox

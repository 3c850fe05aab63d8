"""The runner's overhead per job: pickup-to-completed minus a bare `python main.py` of the same submission.

    .venv/bin/python bench/runner_overhead.py --repeat 5                  # a light example (reads pcb1.zip)
    .venv/bin/python bench/runner_overhead.py --repeat 2 --example padim  # examples/padim (anomalib, CPU)

Measured side by side in one run, same machine, same interpreter, same clean job environment:
- bare: `python main.py --config config.yaml --output OUT` in a directory where pcb1.zip is already
  extracted, no sandbox (what a user runs locally);
- sandboxed: the same command wrapped exactly as the runner wraps it (prlimit + bwrap + setpriv);
- runner: a real submission through the whole local stack; the job record's `started_at` (the runner's
  claim of the message) to `finished_at` (its terminal record, after results and the MLflow run are
  written). Two cases: the dataset already in the runner's dataset cache (same zip as an earlier job), and
  not cached (a zip with new content each time: downloaded, hashed, extracted).
overhead = runner - bare (medians); the sandbox's own share = sandboxed - bare. Because a heavy example's
own run time varies by seconds from run to run, each runner job's pickup-to-completed minus that job's own
process wall time (the `wall_time_s` the runner logs to MLflow) is reported too: the runner's work around
the job (download, hashing, extraction, sandbox start, judging, results upload, MLflow run), exactly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples.padim.make_dataset import make_dataset_zip  # noqa: E402
from gpu_runner.execute import job_environment  # noqa: E402
from gpu_runner.sandbox import Bind, Limits, check_sandbox  # noqa: E402
from gpu_runner.settings import RunnerSettings  # noqa: E402
from gpu_runner.workspace import Workspace  # noqa: E402
from leadersboard.client import Client  # noqa: E402
from leadersboard.models.records import JobStatus  # noqa: E402
from tools.stack.up import Stack, StackPorts  # noqa: E402

LIGHT_MAIN = """import argparse, json, pathlib
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
images = sorted(pathlib.Path("pcb1/Data/Images").rglob("*.png"))
size = sum(len(path.read_bytes()) for path in images)
out = pathlib.Path(a.output); out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"params": {"dataset": "pcb1"}, "metrics": {"images": len(images),
                                                                                          "bytes": size}}))
"""


def example_files(example: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if example == "padim":
        for name in ("main.py", "config.yaml"):
            shutil.copyfile(ROOT / "examples" / "padim" / name, into / name)
    else:
        (into / "main.py").write_text(LIGHT_MAIN)
        (into / "config.yaml").write_text("data:\n  init_args:\n    name: pcb1\n")


def bare_runs(example: str, zip_path: Path, repeat: int, scratch: Path) -> tuple[list[float], list[float]]:
    """Seconds of `python main.py ...`, plain and wrapped in the runner's sandbox, each `repeat` times."""
    settings = RunnerSettings(work_dir=scratch / "bare-runner" / "0")
    sandbox = check_sandbox(settings)
    plain: list[float] = []
    sandboxed: list[float] = []
    for index in range(repeat):
        for wrapped, samples in ((False, plain), (True, sandboxed)):
            workspace = Workspace(settings.work_dir / f"{index}-{wrapped}").create()
            example_files(example, workspace.work)
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(workspace.work)
            argv = [settings.python_executable, "main.py", "--config", "config.yaml", "--output", str(workspace.output)]
            env = job_environment(workspace, python_executable=settings.python_executable, gpu="")
            if wrapped and sandbox is not None:
                sandbox.hand_over(workspace.work, workspace.output, workspace.tmp)
                binds = [Bind(d, d, writable=True) for d in (workspace.work, workspace.output, workspace.tmp)]
                argv = sandbox.wrap(argv, cwd=workspace.work, binds=binds, limits=Limits.from_settings(settings))
            started = time.perf_counter()
            done = subprocess.run(argv, cwd=workspace.work, env=env, capture_output=True, timeout=900)
            samples.append(time.perf_counter() - started)
            if done.returncode != 0 or not (workspace.output / "metrics.json").is_file():
                raise RuntimeError(f"the bare run failed: {done.stdout.decode()[-2000:]}")
            workspace.remove()
    return plain, sandboxed


def runner_runs(
    example: str, cached_zip: Path, fresh_zips: list[Path], scratch: Path
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per case: pickup-to-completed of each job, and the same minus that job's own process wall time."""
    stack = Stack(scratch / "stack", ports=StackPorts.free(), with_frontend=False)
    info = stack.start()
    # MLflow's public port is ingest's proxy: sign in with a user name and API token.
    mlflow = MlflowClient(info["urls"]["mlflow"].replace("http://", f"http://admin:{info['admin_token']}@", 1))
    durations: dict[str, list[float]] = {"warm-up": [], "cached": [], "not cached": []}
    around: dict[str, list[float]] = {"warm-up": [], "cached": [], "not cached": []}
    try:
        with Client(info["urls"]["ingest"], info["admin_token"]) as admin:
            admin.set_default_quota(per_hour=100_000, concurrent=2)
        with Client(info["urls"]["ingest"], info["demo_token"]) as client:
            plan = [("warm-up", cached_zip)]
            for fresh in fresh_zips:
                plan += [("cached", cached_zip), ("not cached", fresh)]
            for case, zip_path in plan:
                submission = scratch / "submissions" / f"{len(durations[case])}-{case}"
                example_files(example, submission)
                shutil.copyfile(zip_path, submission / "pcb1.zip")
                record = client.wait(client.submit([submission]), poll_s=0.2, timeout_s=900)
                if record.status is not JobStatus.COMPLETED or record.duration_s is None:
                    raise RuntimeError(f"{case} job {record.submission_id}: {record.status} {record.error}")
                log, _, _ = client.logs(record.submission_id)
                expected = "dataset cache hit" if case == "cached" else "extracted into the dataset cache"
                if expected not in log:
                    raise RuntimeError(f"{case} job: {expected!r} not in its log")
                durations[case].append(record.duration_s)
                job_wall_s = mlflow.get_run(record.mlflow_run_id or "").data.metrics["wall_time_s"]
                around[case].append(record.duration_s - job_wall_s)
    finally:
        stack.stop()
    return durations, around


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3), "n": len(samples)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--example", choices=("light", "padim"), default="light")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        scratch = Path(tmp)
        cached_zip = make_dataset_zip(scratch / "zips" / "cached.zip", seed=1000)
        fresh = [make_dataset_zip(scratch / "zips" / f"fresh-{i}.zip", seed=i) for i in range(args.repeat)]
        plain, sandboxed = bare_runs(args.example, cached_zip, args.repeat, scratch)
        runner, around = runner_runs(args.example, cached_zip, fresh, scratch)
    bare = statistics.median(plain)
    result: dict[str, Any] = {
        "example": args.example,
        "bare": summary(plain),
        "sandboxed bare": summary(sandboxed),
        "runner, dataset cached": summary(runner["cached"]),
        "runner, dataset not cached": summary(runner["not cached"]),
        "sandbox share_s": round(statistics.median(sandboxed) - bare, 3),
        "overhead cached_s": round(statistics.median(runner["cached"]) - bare, 3),
        "overhead not cached_s": round(statistics.median(runner["not cached"]) - bare, 3),
        "runner minus its own job's wall time, cached": summary(around["cached"]),
        "runner minus its own job's wall time, not cached": summary(around["not cached"]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""The leaderboard at scale (issue 14): the view's rebuild, board requests and a user's job list.

    .venv/bin/python bench/leaderboard.py --jobs 10000
    .venv/bin/python bench/leaderboard.py --jobs 100000 --view-by-bench

`--view-by-bench` writes the view's entries itself (`BoardEntry.of(record)`, as the dispatcher's keeper would)
and starts no dispatcher: at 100,000 records the dispatcher does not start (its job view's initial load is given
30 s; bench/README.md), so only ingest is measured then.

Starts its own nats-server and SeaweedFS on free ports in a temporary directory, writes --jobs completed and
scored job records of --users users on --benchmarks benchmarks (2 categories each) straight into the jobs KV,
and the replicates file (replicates.u16, `leadersboard.scoring.replicates.encode`, 2,000 resamples) of every job
a measured board shows: each user's best job on each benchmark and the top --page jobs of each benchmark
(writing 24 KiB for each of 100,000 jobs would measure SeaweedFS, not the board: a board reads the replicates of
the rows it shows only). Then it starts the real dispatcher and ingest as processes, each with its own NATS user
and store identity, and measures:

- initial build: the dispatcher finds no view and builds it from the records (its `meta.built.took_s`);
- rebuild: `POST /api/v1/admin/leaderboard/rebuild` -> `meta.built` with that request id (polled every 50 ms
  through `GET` on the same path), and until ingest serves the whole board again;
- boards: `GET /api/v1/leaderboard?benchmark=..` (limit 100) for every benchmark, by image_AUROC and image_F1Max,
  in the average and each category, best per user; and every benchmark's board of all jobs: the first (cold)
  request of each board separately (cold: rank it, read its rows' replicates); then --rounds rounds over the
  board a page opens on (image_AUROC, average, best per user) of each benchmark; then --cycles rounds over all
  of them, more rows than ingest's replicate cache holds (p50, p99, max);
- job list: one user's `GET /api/v1/submissions?limit=100`, first page and the next (cursor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from nats.errors import TimeoutError as NatsTimeout
from pydantic_settings import BaseSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dispatch import percentile
from bench.stack import nats_and_store
from dispatcher.settings import DispatcherSettings
from ingest.settings import IngestSettings
from leadersboard import keys, nats_io, nats_permissions, store_access
from leadersboard.models.base import utcnow
from leadersboard.models.board import BoardEntry
from leadersboard.models.records import JobRecord, JobStatus, Role
from leadersboard.models.scores import AVERAGE, Interval, MetricSet, Scores, ScoresFile
from leadersboard.s3 import S3Client, make_client
from leadersboard.scoring.replicates import encode
from leadersboard.settings import NatsSettings, settings_env
from leadersboard.tokens import TokenStore, new_token
from tools.stack.procs import ManagedProcess, free_port, http_ready

CATEGORIES = ("c0", "c1")
METRICS = ("image_AUROC", "image_F1Max")
RESAMPLES = 2000
PUTS_IN_FLIGHT = 128
PUT_ATTEMPTS = 5
"""A put that times out (a loaded machine) is tried again, at most this many times in all."""
STORE_THREADS = 32
WAIT_S = 900.0


class Data:
    """The jobs, drawn once from a seeded generator: a skill per user, a value per job around it."""

    def __init__(self, jobs: int, users: int, benchmarks: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.users = [f"u{n:03d}" for n in range(users)]
        self.benchmarks = [f"bench{n}" for n in range(benchmarks)]
        self.user = rng.integers(0, users, jobs)
        self.benchmark = rng.integers(0, benchmarks, jobs)
        skill = rng.uniform(0.55, 0.9, users)
        self.value = np.clip(skill[self.user] + rng.normal(0, 0.03, jobs), 0.3, 0.95).round(4)
        # Per user offsets, so that a user's best job is the same in every category and metric.
        self.offset = rng.uniform(-0.02, 0.02, (users, len(CATEGORIES) + 1))
        start = utcnow() - timedelta(days=365)
        self.created = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 365 * 86400, jobs))]
        self.ids = [f"{int(c.timestamp() * 1000):012x}{secrets.token_hex(6)}" for c in self.created]

    def shown(self, page: int) -> set[int]:
        """The jobs a measured board shows: each user's best per benchmark, and every benchmark's top `page`."""
        chosen: set[int] = set()
        for b in range(len(self.benchmarks)):
            members = np.flatnonzero(self.benchmark == b)
            average = [self.value_of(int(j), 0, 0) for j in members]  # what the board of all jobs ranks by
            ordered = members[np.argsort(-np.asarray(average), kind="stable")]
            chosen.update(int(j) for j in ordered[: page + 1])
            seen: set[int] = set()
            for j in ordered:
                if int(self.user[j]) not in seen:
                    seen.add(int(self.user[j]))
                    chosen.add(int(j))
        return chosen

    def value_of(self, job: int, group: int, metric: int) -> float:
        base = self.value[job] + self.offset[self.user[job], group]
        return float(np.clip(base * (0.9 if metric else 1.0), 0, 1))

    def scores(self, job: int, replicates: dict[str, dict[str, list[float]]] | None) -> Scores:
        def metric_set(group: int) -> dict[str, Interval]:
            name = AVERAGE if group == 0 else CATEGORIES[group - 1]
            out = {}
            for m, metric in enumerate(METRICS):
                value = self.value_of(job, group, m)
                if replicates is None:
                    low, high = max(0.0, value - 0.04), min(1.0, value + 0.04)
                else:
                    low, high = (float(v) for v in np.percentile(replicates[name][metric], [2.5, 97.5]))
                out[metric] = Interval(value=value, ci_low=min(low, value), ci_high=max(high, value))
            return out

        per_category = {name: MetricSet(**metric_set(g + 1)) for g, name in enumerate(CATEGORIES)}
        return Scores(**metric_set(0), per_category=per_category, scorer_version="1", resamples=RESAMPLES, seed=13)

    def replicates(self, job: int, shocks: np.ndarray, rng: np.random.Generator) -> dict[str, dict[str, list[float]]]:
        """Every (group, metric) vector: the value, the benchmark's shared resample shock, the job's own noise."""
        out: dict[str, dict[str, list[float]]] = {}
        for g, name in enumerate((AVERAGE, *CATEGORIES)):
            out[name] = {}
            for m, metric in enumerate(METRICS):
                noise = rng.normal(0, 0.01, RESAMPLES)
                out[name][metric] = np.clip(self.value_of(job, g, m) + shocks[g, m] + noise, 0, 1).tolist()
        return out

    def record(self, job: int, scores: Scores) -> JobRecord:
        user, benchmark, created = self.users[self.user[job]], self.benchmarks[self.benchmark[job]], self.created[job]
        return JobRecord(
            submission_id=self.ids[job], user=user, status=JobStatus.COMPLETED, entrypoint="main.py",
            config="config.yaml", metadata={"method": f"method-{job % 7}"}, created_at=created,
            queued_at=created, started_at=created, finished_at=created + timedelta(minutes=5),
            mlflow_run_url=f"http://mlflow.example/#/experiments/1/runs/{self.ids[job]}",
            benchmark=benchmark, benchmark_version=1, scores=scores,
        )  # fmt: skip


def write_data(data: Data, page: int, nats: NatsSettings, s3: S3Client, bucket: str, view: bool) -> dict[str, float]:
    """The replicates files first (their scores give the records' intervals), then every record; with `view`, the
    view's entries too."""
    started = time.perf_counter()
    rng = np.random.default_rng(1)
    shocks = rng.normal(0, 0.02, (len(data.benchmarks), len(CATEGORIES) + 1, len(METRICS), RESAMPLES))
    shown = sorted(data.shown(page))
    scores: dict[int, Scores] = {}

    def put(job: int) -> None:
        vectors = data.replicates(job, shocks[data.benchmark[job]], np.random.default_rng(job))
        scores[job] = data.scores(job, vectors)
        file = ScoresFile(benchmark=data.benchmarks[data.benchmark[job]], benchmark_version=1, scored_at=utcnow(),
                          scores=scores[job], replicates=vectors)  # fmt: skip
        key = keys.replicates_key(data.users[data.user[job]], data.ids[job])
        s3.put_object(Bucket=bucket, Key=key, Body=encode(file))

    with ThreadPoolExecutor(STORE_THREADS) as pool:
        list(pool.map(put, shown))
    stored_s = time.perf_counter() - started
    records = [data.record(j, scores.get(j) or data.scores(j, None)) for j in range(len(data.ids))]
    pairs = [(keys.kv_submission_key(r.user, r.submission_id), r.model_dump_json().encode()) for r in records]
    asyncio.run(_put_all(nats, nats.jobs_kv_bucket, pairs))
    if view:  # what the dispatcher's keeper would write: BoardEntry.of(record) under kv_board_key
        entries = [(keys.kv_board_key(r.user, r.submission_id), BoardEntry.of(r)) for r in records]
        pairs = [(key, entry.model_dump_json().encode()) for key, entry in entries if entry is not None]
        asyncio.run(_put_all(nats, nats.board_kv_bucket, pairs))
    return {"replicate_files": len(shown), "store_s": round(stored_s, 1),
            "records_s": round(time.perf_counter() - started - stored_s, 1)}  # fmt: skip


async def _put_all(nats: NatsSettings, bucket: str, pairs: list[tuple[str, bytes]]) -> None:
    nc = await nats_io.connect(nats, name="bench")
    try:
        kv = await nc.jetstream().key_value(bucket)
        slots = asyncio.Semaphore(PUTS_IN_FLIGHT)

        async def put(key: str, value: bytes) -> None:
            async with slots:
                for attempt in range(1, PUT_ATTEMPTS + 1):
                    try:
                        await kv.put(key, value)
                        return
                    except NatsTimeout:
                        if attempt == PUT_ATTEMPTS:
                            raise
                        await asyncio.sleep(attempt)

        await asyncio.gather(*(put(key, value) for key, value in pairs))
    finally:
        await nc.drain()


async def _prepare(nats: NatsSettings, tokens: dict[str, tuple[str, Role]]) -> None:
    nc = await nats_io.connect(nats, name="bench")
    try:
        js = nc.jetstream()
        await nats_io.ensure_topology(js, nats)
        store = TokenStore(await js.key_value(nats.tokens_kv_bucket))
        for token, (user, role) in tokens.items():
            await store.ensure(token, user, role)
    finally:
        await nc.drain()


def wait_for(what: str, check: Any, timeout_s: float = WAIT_S, poll_s: float = 0.05) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.perf_counter() - started


def timed(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.get(path, params=params)
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return elapsed_ms, response.json()


def stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(percentile(values, 50), 1), "p99_ms": round(percentile(values, 99), 1),
            "max_ms": round(max(values), 1)}  # fmt: skip


def measure(url: str, tokens: dict[str, str], data: Data, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    user = httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens['user']}"}, timeout=120)
    admin = httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=60)
    expected = {name: int((data.benchmark == b).sum()) for b, name in enumerate(data.benchmarks)}

    def served() -> bool:  # ingest shows every benchmark's whole board (all jobs)
        response = user.get("/leaderboard", params={"benchmark": data.benchmarks[-1], "all": "true", "limit": 1})
        return response.status_code == 200 and response.json()["total"] == expected[data.benchmarks[-1]]

    # Started with no view: the dispatcher builds it (meta.built, request_id None) and ingest follows.
    report["initial_view_served_s"] = round(wait_for("the initial view", served, poll_s=0.5), 1)
    if args.view_by_bench:
        return report | measure_requests(user, data, args)
    wait_for("the initial build", lambda: admin.get("/admin/leaderboard/rebuild").status_code == 200, poll_s=0.5)
    report["initial_build"] = admin.get("/admin/leaderboard/rebuild").json()
    accepted = admin.post("/admin/leaderboard/rebuild")
    requested = time.perf_counter()
    request_id = accepted.json()["request_id"]

    def built() -> bool:
        response = admin.get("/admin/leaderboard/rebuild")
        return response.status_code == 200 and response.json()["request_id"] == request_id

    report["rebuild_s"] = round(wait_for("the rebuild", built), 2)
    report["rebuild"] = admin.get("/admin/leaderboard/rebuild").json()
    wait_for("the rebuilt view in ingest", served, poll_s=0.2)
    report["rebuild_to_served_s"] = round(time.perf_counter() - requested, 2)
    return report | measure_requests(user, data, args)


def measure_requests(user: httpx.Client, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}

    boards = [{"benchmark": b, "metric": m, "category": c, "limit": args.page}
              for b in data.benchmarks for m in METRICS for c in (AVERAGE, *CATEGORIES)]  # fmt: skip
    boards += [{"benchmark": b, "all": "true", "limit": args.page} for b in data.benchmarks]
    cold = []
    for params in boards:
        elapsed, body = timed(user, "/leaderboard", params)
        cold.append(elapsed)
        untied = [e for e in body["entries"][1:] if e["tied_with_leader"] is None]
        assert not untied, f"{params}: rows without their replicates: {len(untied)}"
    report["board_cold"] = stats(cold)
    # The board a page opens on (image_AUROC, average, each user's best) of every benchmark, round after round:
    # their rows' replicates fit in ingest's cache.
    defaults = [params for params in boards if params.get("category") == AVERAGE and params["metric"] == METRICS[0]]
    report["board_default_warm"] = stats(
        [timed(user, "/leaderboard", p)[0] for _ in range(args.rounds) for p in defaults]
    )
    # Every board in turn: more rows than the cache holds, so a least-recently-used cache misses on each.
    report["board_all_cycled"] = stats([timed(user, "/leaderboard", p)[0] for _ in range(args.cycles) for p in boards])
    report["self_reported"] = stats([timed(user, "/leaderboard")[0] for _ in range(50)])

    first, page2 = [], []
    for _ in range(args.rounds * 5):
        elapsed, body = timed(user, "/submissions", {"limit": 100})
        first.append(elapsed)
        if body["next_cursor"]:
            page2.append(timed(user, "/submissions", {"limit": 100, "cursor": body["next_cursor"]})[0])
    report["job_list_jobs_of_user"] = int((data.user == 0).sum())
    report["job_list_first_page"] = stats(first)
    report["job_list_second_page"] = stats(page2) if page2 else None
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--benchmarks", type=int, default=10)
    parser.add_argument("--page", type=int, default=100, help="entries per board request")
    parser.add_argument("--rounds", type=int, default=20, help="rounds over the default boards")
    parser.add_argument("--cycles", type=int, default=2, help="rounds over every board")
    parser.add_argument("--cache-mb", type=int, default=None, help="ingest's replicate cache (default: its own)")
    parser.add_argument("--view-by-bench", action="store_true",
                        help="write the view's entries here and start no dispatcher (no rebuild measured)")  # fmt: skip
    args = parser.parse_args()
    processes: list[ManagedProcess] = []
    with tempfile.TemporaryDirectory(prefix="lb-leaderboard-bench-") as tmp, nats_and_store(Path(tmp)) as stores:
        root, (nats, seaweed) = Path(tmp), stores
        try:
            s3_admin = seaweed.settings()
            s3 = make_client(s3_admin)
            tokens = {"user": new_token(), "admin": new_token()}
            asyncio.run(_prepare(nats.settings(), {tokens["user"]: ("u000", Role.USER),
                                                   tokens["admin"]: ("admin", Role.ADMIN)}))  # fmt: skip
            data = Data(args.jobs, args.users, args.benchmarks)
            written = write_data(data, args.page, nats.settings(), s3, s3_admin.bucket, args.view_by_bench)
            print(json.dumps({"jobs": args.jobs, "users": args.users, "benchmarks": args.benchmarks, **written}),
                  flush=True)  # fmt: skip
            url = start_services(root, nats, seaweed, processes, args)
            print(json.dumps(measure(url, tokens, data, args)), flush=True)
        finally:
            for process in reversed(processes):
                process.stop()


def start_services(root: Path, nats: Any, seaweed: Any, processes: list[ManagedProcess], args: Any) -> str:
    """The dispatcher (it builds the view) and ingest (it serves it), each as its own NATS user and identity."""
    dispatcher = DispatcherSettings(
        **nats.settings(nats_permissions.DISPATCHER).model_dump(),
        **seaweed.settings_as(store_access.DISPATCHER).model_dump(),
    )
    cache: dict[str, Any] = {} if args.cache_mb is None else {"replicate_cache_mb": args.cache_mb}
    ingest = IngestSettings(
        **nats.settings(nats_permissions.INGEST).model_dump(),
        **seaweed.settings_as(store_access.INGEST).model_dump(),
        port=free_port(),
        **cache,
    )
    url = f"http://127.0.0.1:{ingest.port}"
    started: list[tuple[str, BaseSettings, str | None]] = [("ingest", ingest, f"{url}/api/v1/health")]
    if not args.view_by_bench:
        started.insert(0, ("dispatcher", dispatcher, None))
    for name, settings, ready in started:
        process = ManagedProcess(
            name, [sys.executable, "-m", name], root / "logs" / f"{name}.log",
            env={**settings_env(settings), "PYTHONUNBUFFERED": "1"}, ready=http_ready(ready) if ready else None,
        )  # fmt: skip
        processes.append(process.start().wait_ready(120) if ready else process.start())
    return url


if __name__ == "__main__":
    main()

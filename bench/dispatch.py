"""Dispatch latency and dispatcher throughput (issue: dispatcher quotas and fair queue).

    .venv/bin/python bench/dispatch.py latency --jobs 200
    .venv/bin/python bench/dispatch.py throughput --events 2000

latency: through the whole local stack (bridge, dispatcher, one sandboxed runner), the time from the manifest
PUT being acknowledged to the runner spawning the user's process, and to the first line of its trivial
main.py running (interpreter start included), one job at a time, with the time split by stage.
throughput: the dispatcher's consume loop (validation against the store, quota checks, records,
release) over pre-published MinIO-shaped events, against a plain JetStream consume-and-ack loop over
the same number of messages, measured in the same run on the same nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote_plus

from dispatcher.service import run as run_dispatcher
from dispatcher.settings import DispatcherSettings
from leadersboard import keys, nats_io
from leadersboard.client import Client
from leadersboard.models.base import utcnow
from leadersboard.models.submission import FileSpec, Manifest
from leadersboard.s3 import ensure_bucket, make_client
from tools.stack.procs import SeaweedPorts, free_port
from tools.stack.services import start_nats, start_seaweed
from tools.stack.up import Stack, StackPorts

MINIO_EVENT_SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minio-nats-event.sample.json"
TIMED_MAIN = """import argparse, json, pathlib, time
started_s = time.time()
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
out = pathlib.Path(a.output); out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"started_s": started_s}}))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency(jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp) / "data", ports=StackPorts.free(), with_frontend=False)
        info = stack.start()
        try:
            with Client(info["urls"]["ingest"], info["admin_token"]) as admin:
                admin.set_default_quota(per_hour=100_000, concurrent=2)
            submission = Path(tmp) / "job"
            submission.mkdir()
            (submission / "main.py").write_text(TIMED_MAIN)
            (submission / "config.yaml").write_text("dataset: bench\n")
            files = {p.name: p for p in submission.iterdir()}
            stages: dict[str, list[float]] = {name: [] for name in STAGES_AND_TOTALS}
            with Client(info["urls"]["ingest"], info["demo_token"]) as client:
                for _ in range(jobs):
                    created = client.create_submission(files)
                    client.upload(created, files)  # returns once the manifest PUT is acknowledged
                    acked_s = time.time()
                    record = client.wait(created.submission_id, poll_s=0.05, timeout_s=120)
                    spawned = SPAWN_LINE.search(client.logs(created.submission_id)[0])
                    assert spawned is not None and record.queued_at and record.started_at, record
                    marks = [acked_s, record.queued_at.timestamp(), record.started_at.timestamp(),
                             datetime.fromisoformat(spawned[1]).timestamp(), record.metrics["started_s"]]  # fmt: skip
                    for name, begin, end in zip(STAGES, marks[:-1], marks[1:], strict=True):
                        stages[name].append((end - begin) * 1000)
                    stages["to_spawn"].append((marks[3] - acked_s) * 1000)
                    stages["to_first_line"].append((marks[4] - acked_s) * 1000)
        finally:
            stack.stop()
    report: dict[str, float] = {"jobs": jobs}
    for name in ("to_spawn", "to_first_line"):
        report |= {f"{name}_p50_ms": round(percentile(stages[name], 50), 1),
                   f"{name}_p99_ms": round(percentile(stages[name], 99), 1),
                   f"{name}_mean_ms": round(statistics.mean(stages[name]), 1)}  # fmt: skip
    print(json.dumps(report))
    print(json.dumps({f"{name}_p50_ms": round(percentile(stages[name], 50), 1) for name in STAGES}))


SPAWN_LINE = re.compile(r"^\[leadersboard\] (\S+) starting ", re.M)
STAGES = ("event_intake_release", "runner_claim", "download_and_prepare", "sandbox_and_interpreter_start")
"""Between the manifest PUT's ack, the record's queued_at and started_at (the runner's claim), the runner's
spawn of the process (its `starting` line in the job log) and main.py's first line."""
STAGES_AND_TOTALS = (*STAGES, "to_spawn", "to_first_line")


async def throughput(events: int) -> None:
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nats = start_nats(root, port=free_port())
        seaweed = start_seaweed(root, ports=SeaweedPorts.free(), access_key="bench", secret_key=secrets.token_hex(16))
        try:
            settings = DispatcherSettings(**nats.settings().model_dump(), **seaweed.settings().model_dump(), burst=True)
            s3 = make_client(settings)
            ensure_bucket(s3, settings.bucket)
            nc = await nats_io.connect(settings, name="bench")
            js = nc.jetstream()
            await nats_io.ensure_topology(js, settings)
            raw_s = await _raw_consume(js, events)
            bodies = await asyncio.to_thread(_store_submissions, s3, settings.bucket, events)
            for body in bodies:
                await js.publish(settings.events_subject, body)
            jobs_kv = await js.key_value(settings.jobs_kv_bucket)
            started = time.perf_counter()
            dispatching = asyncio.create_task(run_dispatcher(settings.model_copy(update={"burst": False}), stop=stop))
            while len(await _keys(jobs_kv)) < events:  # noqa: ASYNC110 (polling the store is the measurement)
                await asyncio.sleep(0.05)
            dispatcher_s = time.perf_counter() - started
            stop.set()
            await dispatching
            await nc.drain()
        finally:
            seaweed.process.stop()
            nats.process.stop()
    print(json.dumps({"events": events, "raw_jetstream_per_s": round(events / raw_s),
                      "dispatcher_per_s": round(events / dispatcher_s),
                      "ratio": round(raw_s / dispatcher_s, 3)}))  # fmt: skip


async def _keys(kv: object) -> list[str]:
    from nats.js.errors import NoKeysError

    try:
        return await kv.keys()  # type: ignore[attr-defined,no-any-return]
    except NoKeysError:
        return []


async def _raw_consume(js: object, count: int) -> float:
    from nats.js import JetStreamContext

    assert isinstance(js, JetStreamContext)
    await js.add_stream(name="BENCH_RAW", subjects=["bench.raw"])
    body = b"x" * 1200  # about the size of a MinIO event
    for _ in range(count):
        await js.publish("bench.raw", body)
    sub = await js.pull_subscribe("bench.raw", durable="raw", stream="BENCH_RAW")
    started, seen = time.perf_counter(), 0
    while seen < count:
        for message in await sub.fetch(64, timeout=5):
            await message.ack()
            seen += 1
    return time.perf_counter() - started


def _store_submissions(s3: object, bucket: str, count: int) -> list[bytes]:
    bodies = []
    for n in range(count):
        user, sid = f"user{n % 10}", keys.new_submission_id()
        files = {"main.py": b"print(1)\n", "config.yaml": b"a: 1\n"}
        for path, data in files.items():
            s3.put_object(Bucket=bucket, Key=keys.file_key(user, sid, path), Body=data)  # type: ignore[attr-defined]
        specs = [FileSpec(path=p, size=len(d)) for p, d in files.items()]
        manifest = Manifest(
            submission_id=sid, user=user, entrypoint="main.py", config="config.yaml", files=specs, created_at=utcnow()
        )
        key = keys.manifest_key(user, sid)
        s3.put_object(Bucket=bucket, Key=key, Body=manifest.model_dump_json().encode())  # type: ignore[attr-defined]
        record = json.loads(MINIO_EVENT_SAMPLE.read_text())
        record["Key"] = f"{bucket}/{key}"
        record["Records"][0]["s3"]["bucket"]["name"] = bucket
        record["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="")
        bodies.append(json.dumps(record).encode())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("latency").add_argument("--jobs", type=int, default=200)
    sub.add_parser("throughput").add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "latency":
        latency(args.jobs)
    else:
        # Every user's quota must admit the events: 10 users, so per_hour well above events / 10.
        asyncio.run(throughput(args.events))


if __name__ == "__main__":
    main()

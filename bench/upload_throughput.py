"""Upload throughput of `leadersboard submit`'s client against plain boto3, and resubmitting an unchanged dataset.

    .venv/bin/python bench/upload_throughput.py --size-mib 1024 --rounds 3

Starts its own nats-server, SeaweedFS and ingest (no dispatcher nor runner: nothing competes with the
uploads for the two cores) on free ports in a temporary directory, writes a random file of --size-mib MiB
there and deletes everything at the end.

- upload: the client's upload of a submission holding the file (presigned multipart, parallel parts; the
  sha256 is already cached, so this is create + upload + manifest) against `boto3.upload_file` of the same
  file to the same store with its default TransferConfig (8 MiB parts, 10 threads), alternating, --rounds
  times each; the blob is deleted between rounds so every round really uploads. The ratio is boto3's total
  time over the client's (>= 1: the client is as fast or faster), and per round (pairs run back to back).
- resubmit: `leadersboard submit` as a subprocess (interpreter start included) of the unchanged submission
  with a warm hash cache: the dataset must be answered `present` and no byte of it sent; and the same
  through the client in process (no interpreter start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import nats_and_store
from ingest.settings import IngestSettings
from leadersboard import keys, nats_io
from leadersboard.client import Client
from leadersboard.models.records import Role
from leadersboard.s3 import S3Client, make_client
from leadersboard.settings import NatsSettings, settings_env
from leadersboard.tokens import TokenStore, new_token
from leadersboard.upload import HashCache
from tools.stack.procs import ManagedProcess, free_port, http_ready

MiB = 1024 * 1024
MAIN = "print('bench')\n"


async def register(nats: NatsSettings, token: str) -> None:
    nc = await nats_io.connect(nats, name="bench")
    try:
        js = nc.jetstream()
        await nats_io.ensure_topology(js, nats)
        await TokenStore(await js.key_value(nats.tokens_kv_bucket)).ensure(token, "bench", Role.USER)
    finally:
        await nc.drain()


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // (16 * MiB)):
            handle.write(os.urandom(16 * MiB))
        handle.write(os.urandom(size % (16 * MiB)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="the client's parallel part uploads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lb-upload-bench-") as tmp, nats_and_store(Path(tmp)) as (nats, seaweed):
        root = Path(tmp)
        s3_settings = seaweed.settings()
        token = new_token()
        asyncio.run(register(nats.settings(), token))
        ingest = IngestSettings(**nats.settings().model_dump(), **s3_settings.model_dump(), port=free_port())
        url = f"http://127.0.0.1:{ingest.port}"
        process = ManagedProcess(
            "ingest", [sys.executable, "-m", "ingest"], root / "logs" / "ingest.log",
            env={**settings_env(ingest), "PYTHONUNBUFFERED": "1"}, ready=http_ready(f"{url}/api/v1/health"),
        )  # fmt: skip
        try:
            process.start().wait_ready(60)
            run(root, url, token, make_client(s3_settings), s3_settings.bucket, args)
        finally:
            process.stop()


def run(root: Path, url: str, token: str, s3: S3Client, bucket: str, args: argparse.Namespace) -> None:
    size = args.size_mib * MiB
    submission = root / "submission"
    submission.mkdir()
    (submission / "main.py").write_text(MAIN)
    (submission / "config.yaml").write_text("dataset: bench\n")
    dataset = submission / "dataset.bin"
    started = time.perf_counter()
    write_random(dataset, size)
    print(f"wrote {args.size_mib} MiB of random data in {time.perf_counter() - started:.1f} s", flush=True)
    cache_home = root / "cache"
    cache = HashCache(cache_home / "leadersboard" / "sha256.json")
    files = {p.name: p for p in sorted(submission.iterdir())}

    with Client(url, token, workers=args.workers, hash_cache=cache) as client:
        started = time.perf_counter()
        hashes = client.hashes(files)
        hash_s = time.perf_counter() - started
        blob = keys.blob_key("bench", hashes["dataset.bin"])
        print(f"sha256 of the dataset (cold): {hash_s:.2f} s ({size / MiB / hash_s:.0f} MiB/s)", flush=True)
        ours: list[float] = []
        theirs: list[float] = []
        for round_number in range(1, args.rounds + 1):
            s3.delete_object(Bucket=bucket, Key=blob)
            started = time.perf_counter()
            created = client.create_submission(files, sha256=client.hashes(files))
            stats = client.upload(created, files)
            ours.append(time.perf_counter() - started)
            assert stats.multipart == ["dataset.bin"], stats
            started = time.perf_counter()
            s3.upload_file(str(dataset), bucket, f"bench/boto3-{round_number}")
            theirs.append(time.perf_counter() - started)
            s3.delete_object(Bucket=bucket, Key=f"bench/boto3-{round_number}")
            print(f"round {round_number}: client {size / MiB / ours[-1]:.0f} MiB/s ({ours[-1]:.2f} s), "
                  f"boto3 {size / MiB / theirs[-1]:.0f} MiB/s ({theirs[-1]:.2f} s)", flush=True)  # fmt: skip

        started = time.perf_counter()
        resubmitted = client.create_submission(files, sha256=client.hashes(files))
        stats = client.upload(resubmitted, files)
        in_process_s = time.perf_counter() - started
        assert stats.present == ["dataset.bin"], stats

    env = {**os.environ, "LEADERSBOARD_URL": url, "LEADERSBOARD_TOKEN": token, "XDG_CACHE_HOME": str(cache_home)}
    cli = str(Path(sys.executable).parent / "leadersboard")
    started = time.perf_counter()
    done = subprocess.run([cli, "submit", str(submission), "--json"], env=env, capture_output=True, text=True)
    resubmit_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"leadersboard submit failed: {done.stderr}")
    result = json.loads(done.stdout)
    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    summary = {
        "size_mib": args.size_mib,
        "workers": args.workers,
        "client_mib_s": round(size / MiB / median_ours, 1),
        "boto3_mib_s": round(size / MiB / median_theirs, 1),
        "ratio_total_time": round(sum(theirs) / sum(ours), 3),
        "ratio_per_round": [round(t / o, 2) for o, t in zip(ours, theirs, strict=True)],
        "cold_sha256_s": round(hash_s, 2),
        "resubmit_s": round(resubmit_s, 2),
        "resubmit_in_process_s": round(in_process_s, 3),
        "resubmit_present": result["present"],
        "resubmit_sent_bytes": result["sent_bytes"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

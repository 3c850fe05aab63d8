"""`weed mini`'s memory under S3 transfers, with and without Go's soft memory limit (tools/stack/services.py
`SEAWEED_MEMORY_LIMIT`).

    .venv/bin/python bench/weed_memory.py --rounds 20                 # as the stack runs it (with the limit)
    .venv/bin/python bench/weed_memory.py --rounds 20 --no-limit      # without it
    .venv/bin/python bench/weed_memory.py --rounds 2 --object-mib 1024 --part-mib 16 --limit 256MiB

Starts `weed mini` exactly as the local stack does, in a temporary directory; each round uploads a fresh
20 MiB object (multipart, 8 MiB parts, boto3's 10 parts in flight), PUTs five 2 KB objects and downloads the
20 MiB one. Prints the PSS of weed's process tree every 10 rounds, the transfers' wall time and weed's CPU
seconds for them (the cost of a tighter limit: the collector runs more often), and the PSS every 30 s and CPU use
over --idle-s idle (Go's scavenger returns a burst's heap over minutes, not at once).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

from boto3.s3.transfer import TransferConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leadersboard.s3 import ensure_bucket, make_client  # noqa: E402
from tools.stack import services  # noqa: E402
from tools.stack.proc_info import cpu_seconds, process_tree, pss_bytes  # noqa: E402
from tools.stack.procs import SeaweedPorts  # noqa: E402

MiB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--object-mib", type=int, default=20)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--idle-s", type=int, default=30, help="how long to watch weed idle after the transfers")
    parser.add_argument("--no-limit", action="store_true", help="start weed without GOMEMLIMIT")
    parser.add_argument("--limit", default=services.SEAWEED_MEMORY_LIMIT, help="GOMEMLIMIT (default: the stack's)")
    args = parser.parse_args()
    limit = "" if args.no_limit else args.limit
    with (
        tempfile.TemporaryDirectory(prefix="lb-weed-memory-") as tmp,
        mock.patch.object(services, "SEAWEED_MEMORY_LIMIT", limit),
    ):  # an empty GOMEMLIMIT is Go's default: no limit
        weed = services.start_seaweed(
            Path(tmp), ports=SeaweedPorts.free(), access_key="bench-" + secrets.token_hex(4),
            secret_key=secrets.token_hex(16),
        )  # fmt: skip
        try:
            figures = transfer(weed, Path(tmp), args.rounds, args.object_mib * MiB, args.part_mib * MiB, args.idle_s)
            result = {"GOMEMLIMIT": limit or None, **figures}
        finally:
            weed.process.stop()
    print(json.dumps(result, indent=2))


def transfer(weed: services.Seaweed, scratch: Path, rounds: int, size: int, part: int, idle_s: int) -> dict[str, float]:
    def pss_mib() -> float:
        return round(pss_bytes(process_tree([weed.process.pid])) / MiB, 1)

    s3 = make_client(weed.settings())
    ensure_bucket(s3, "leadersboard")
    figures = {"start_mib": pss_mib()}
    blob, back = scratch / "blob", scratch / "back"
    seconds = 0.0
    cpu_s = 0.0
    for index in range(rounds):
        write_random(blob, size)
        started, cpu_before = time.monotonic(), cpu_seconds(process_tree([weed.process.pid]))
        s3.upload_file(
            str(blob), "leadersboard", f"r/{index}/data.zip", Config=TransferConfig(multipart_chunksize=part)
        )
        for small in range(5):
            s3.put_object(Bucket="leadersboard", Key=f"r/{index}/small-{small}", Body=os.urandom(2000))
        s3.download_file("leadersboard", f"r/{index}/data.zip", str(back))
        seconds += time.monotonic() - started
        cpu_s += cpu_seconds(process_tree([weed.process.pid])) - cpu_before
        if index % 10 == 9:
            figures[f"after_{index + 1}_mib"] = pss_mib()
    figures["transfers_s"] = round(seconds, 1)
    figures["weed_cpu_s"] = round(cpu_s, 1)
    cpu_before = cpu_seconds(process_tree([weed.process.pid]))
    for waited in range(30, idle_s + 1, 30):
        time.sleep(30)
        figures[f"idle_{waited}s_mib"] = pss_mib()
    figures["idle_cpu_cores"] = round((cpu_seconds(process_tree([weed.process.pid])) - cpu_before) / idle_s, 3)
    return figures


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // (16 * MiB)):
            handle.write(os.urandom(16 * MiB))
        handle.write(os.urandom(size % (16 * MiB)))


if __name__ == "__main__":
    main()

"""`weed mini`'s memory under S3 transfers, with and without Go's soft memory limit (tools/stack/services.py
`SEAWEED_MEMORY_LIMIT`).

    .venv/bin/python bench/weed_memory.py --rounds 20                 # as the stack runs it (with the limit)
    .venv/bin/python bench/weed_memory.py --rounds 20 --no-limit      # without it

Starts `weed mini` exactly as the local stack does, in a temporary directory; each round uploads a fresh
20 MiB object (multipart, 8 MiB parts), PUTs five 2 KB objects and downloads the 20 MiB one. Prints the PSS
of weed's process tree every 10 rounds, the transfers' wall time, and the PSS and CPU use over 30 s idle.
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
IDLE_S = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--object-mib", type=int, default=20)
    parser.add_argument("--no-limit", action="store_true", help="start weed without GOMEMLIMIT")
    args = parser.parse_args()
    limit = "" if args.no_limit else services.SEAWEED_MEMORY_LIMIT
    with (
        tempfile.TemporaryDirectory(prefix="lb-weed-memory-") as tmp,
        mock.patch.object(services, "SEAWEED_MEMORY_LIMIT", limit),
    ):  # an empty GOMEMLIMIT is Go's default: no limit
        weed = services.start_seaweed(
            Path(tmp), ports=SeaweedPorts.free(), access_key="bench-" + secrets.token_hex(4),
            secret_key=secrets.token_hex(16),
        )  # fmt: skip
        try:
            result = {"GOMEMLIMIT": limit or None, **transfer(weed, Path(tmp), args.rounds, args.object_mib * MiB)}
        finally:
            weed.process.stop()
    print(json.dumps(result, indent=2))


def transfer(weed: services.Seaweed, scratch: Path, rounds: int, size: int) -> dict[str, float]:
    def pss_mib() -> float:
        return round(pss_bytes(process_tree([weed.process.pid])) / MiB, 1)

    s3 = make_client(weed.settings())
    ensure_bucket(s3, "leadersboard")
    figures = {"start_mib": pss_mib()}
    blob, back = scratch / "blob", scratch / "back"
    started = time.monotonic()
    for index in range(rounds):
        blob.write_bytes(os.urandom(size))
        s3.upload_file(
            str(blob), "leadersboard", f"r/{index}/data.zip", Config=TransferConfig(multipart_chunksize=8 * MiB)
        )
        for small in range(5):
            s3.put_object(Bucket="leadersboard", Key=f"r/{index}/small-{small}", Body=os.urandom(2000))
        s3.download_file("leadersboard", f"r/{index}/data.zip", str(back))
        if index % 10 == 9:
            figures[f"after_{index + 1}_mib"] = pss_mib()
    figures["transfers_s"] = round(time.monotonic() - started, 1)
    cpu_before = cpu_seconds(process_tree([weed.process.pid]))
    time.sleep(IDLE_S)
    figures[f"idle_{IDLE_S}s_mib"] = pss_mib()
    figures["idle_cpu_cores"] = round((cpu_seconds(process_tree([weed.process.pid])) - cpu_before) / IDLE_S, 3)
    return figures


if __name__ == "__main__":
    main()

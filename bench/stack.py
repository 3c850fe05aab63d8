"""How the benches start what they measure: the whole local stack, or only NATS and the store, in a temporary
directory under /tmp that is removed at the end, every port free-picked, every process stopped on the way out.

    with local_stack("lb-web-upload-", with_frontend=True, runners=0) as (root, stack, info): ...
    with nats_and_store(root) as (nats, seaweed): ...     # processes stopped at the end
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from leadersboard.s3 import ensure_bucket, make_client
from tools.stack import services
from tools.stack.procs import SeaweedPorts, free_port
from tools.stack.up import Stack, StackPorts

__all__ = ["local_stack", "nats_and_store"]


@contextmanager
def local_stack(
    prefix: str, *, weed_limit: str | None = None, **stack_args: Any
) -> Iterator[tuple[Path, Stack, dict[str, Any]]]:
    """`leadersboard up`'s processes on free ports (`stack_args` go to `Stack`), with weed's GOMEMLIMIT set to
    `weed_limit` when given; answers the scratch directory, the stack and its `info` (URLs, tokens)."""
    with ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp")))
        if weed_limit is not None:
            cleanup.enter_context(mock.patch.object(services, "SEAWEED_MEMORY_LIMIT", weed_limit))
        stack = Stack(root / "stack", ports=StackPorts.free(), **stack_args)
        cleanup.callback(stack.stop)
        yield root, stack, stack.start()


@contextmanager
def nats_and_store(root: Path) -> Iterator[tuple[services.NatsServer, services.Seaweed]]:
    """A nats-server and a SeaweedFS with the bucket made, for the benches that start their own services."""
    with ExitStack() as cleanup:
        nats = services.start_nats(root, port=free_port())
        cleanup.callback(nats.process.stop)
        seaweed = services.start_seaweed(
            root, ports=SeaweedPorts.free(), access_key="bench-" + secrets.token_hex(4),
            secret_key=secrets.token_hex(16),
        )  # fmt: skip
        cleanup.callback(seaweed.process.stop)
        settings = seaweed.settings()
        ensure_bucket(make_client(settings), settings.bucket)
        yield nats, seaweed

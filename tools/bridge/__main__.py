"""`python -m tools.bridge`: run the SeaweedFS -> NATS bridge until SIGTERM or SIGINT.

On stop, `run` kills the tail, saves the checkpoint and drains NATS instead of dying mid-publish.
"""

from __future__ import annotations

from leadersboard.service import serve
from tools.bridge.service import run
from tools.bridge.settings import BridgeSettings


def main() -> None:
    serve("bridge", BridgeSettings, run)


if __name__ == "__main__":
    main()

"""Waiting for a job on a board: the view follows the records (the dispatcher writes a completed job's entry, each
ingest's copy of the view follows the bucket), so an entry appears a moment after its record completes."""

from __future__ import annotations

import time

from leadersboard.client import Client

__all__ = ["wait_on_self_reported_board"]


def wait_on_self_reported_board(client: Client, sid: str, *, dataset: str | None, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        board = client.self_reported_board(dataset=dataset)
        if sid in [entry.submission_id for entry in board.entries]:
            return
        assert time.monotonic() < deadline, f"{sid} not on the board of {dataset} within {timeout_s} s"
        time.sleep(0.2)

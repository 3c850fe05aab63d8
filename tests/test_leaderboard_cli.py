"""`leadersboard leaderboard`, `leadersboard list` and `leadersboard admin leaderboard rebuild` as users run them
(subprocesses of .venv/bin/leadersboard) against the real ingest app on its socket, nats-server and SeaweedFS."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.js.kv import KeyValue

from leadersboard import keys
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.board import BoardBuilt, BoardRebuild
from leadersboard.models.records import JobRecord
from leadersboard.s3 import make_client
from leadersboard.settings import S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.leaderboard_fixtures import Published, publish, publish_demo, self_reported, until

pytestmark = pytest.mark.timeout(180)

CLI = str(Path(sys.executable).parent / "leadersboard")


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@pytest.fixture
async def demo(api: Api, alice: str, board_kv: KeyValue, s3_settings: S3Settings) -> Published:
    published = await publish_demo(board_kv, make_client(s3_settings), s3_settings.bucket)
    await publish(board_kv, make_client(s3_settings), s3_settings.bucket, self_reported("bob", "cable", {"x": 0.5}))
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    await until(api, alice, lambda b: len(b["entries"]) == 1, metric="x")
    return published


async def cli(api: Api, token: str, *args: str, tmp_path: Path) -> Done:
    """The command, run while this test's event loop keeps serving the API it calls."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    env |= {"LEADERSBOARD_URL": str(api.make_url("")).rstrip("/"), "LEADERSBOARD_TOKEN": token, "COLUMNS": "220"}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Done(process.returncode, stdout.decode(), stderr.decode())


async def test_the_verified_board_in_the_terminal(api: Api, alice: str, demo: Published, tmp_path: Path) -> None:
    done = await cli(api, alice, "leaderboard", "--benchmark", "demo", "--version", "1", tmp_path=tmp_path)
    assert done.code == 0, done.stderr
    assert "Verified leaderboard: demo v1, image_AUROC, average (verified (public test labels)" in done.stdout
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in done.stdout.splitlines()]
    rows = {row[1]: row for row in cells if len(row) == 7}  # rank, user, method, value, interval, tie, submission
    assert list(rows) == ["alice", "bob", "dave", "carol", "erin"]
    scores = demo["alice"][0].scores
    assert scores is not None
    leader = scores.image_AUROC
    value, interval = f"{leader.value:.4f}", f"[{leader.ci_low:.4f}, {leader.ci_high:.4f}]"
    assert rows["alice"] == ["1 (1-2)", "alice", "padim", value, interval, "", demo["alice"][0].submission_id]
    assert rows["bob"][0] == "2 (1-2)" and rows["bob"][5] == "≈ leader"  # the near copy: tied with the leader
    assert (rows["carol"][0], rows["carol"][5]) == ("4", "")
    assert "rows 1-5 of 5" in done.stderr and "categories: bottle, wood" in done.stderr

    bottle = await cli(api, alice, "leaderboard", "--benchmark", "demo", "--version", "1", "--category", "bottle",
                       "--all", "--limit", "2", tmp_path=tmp_path)  # fmt: skip
    assert "demo v1, image_AUROC, bottle" in bottle.stdout and "rows 1-2 of 6" in bottle.stderr


async def test_json_is_the_apis_board(api: Api, alice: str, demo: Published, tmp_path: Path) -> None:
    done = await cli(api, alice, "leaderboard", "--benchmark", "demo", "--version", "1", "--json", tmp_path=tmp_path)
    response = await api.get("/api/v1/leaderboard", params={"benchmark": "demo", "version": "1"}, headers=bearer(alice))
    assert done.json() == await response.json()

    self_reported_board = (await cli(api, alice, "leaderboard", "--metric", "x", "--json", tmp_path=tmp_path)).json()
    assert (self_reported_board["kind"], self_reported_board["benchmarks"]) == ("self_reported", ["demo"])
    table = await cli(api, alice, "leaderboard", "--metric", "x", tmp_path=tmp_path)
    assert "Self-reported leaderboard: x" in table.stdout and "bob" in table.stdout
    assert "verified boards: demo (--benchmark NAME)" in table.stderr


async def test_a_refused_board_is_one_line_naming_the_field(
    api: Api, alice: str, demo: Published, tmp_path: Path
) -> None:
    for args, field in ((("--metric", "accuracy"), "metric"), (("--limit", "501"), "limit")):
        done = await cli(api, alice, "leaderboard", "--benchmark", "demo", *args, tmp_path=tmp_path)
        assert done.code == 2 and f"{field}:" in done.stderr and "Traceback" not in done.stderr
    unknown = await cli(api, alice, "leaderboard", "--benchmark", "nope", tmp_path=tmp_path)
    assert unknown.code == 2 and "404" in unknown.stderr and "benchmark:" in unknown.stderr
    stray = await cli(api, alice, "leaderboard", "--category", "bottle", tmp_path=tmp_path)
    assert stray.code == 2 and "--category needs --benchmark" in stray.stderr


async def test_list_pages_with_a_cursor(api: Api, alice: str, jobs: JobStore, tmp_path: Path) -> None:
    ids = []
    for _ in range(3):
        record = JobRecord(submission_id=keys.new_submission_id(), user="alice", entrypoint="main.py",
                           config="config.yaml", created_at=utcnow())  # fmt: skip
        await jobs.create(record)
        ids.append(record.submission_id)
    newest_first = sorted(ids, reverse=True)
    first = await cli(api, alice, "list", "--limit", "2", tmp_path=tmp_path)
    assert first.code == 0 and f"next page: --cursor {newest_first[1]}" in first.stderr
    assert newest_first[0] in first.stdout and newest_first[2] not in first.stdout
    rest = (
        await cli(api, alice, "list", "--limit", "2", "--cursor", newest_first[1], "--json", tmp_path=tmp_path)
    ).json()
    assert [s["submission_id"] for s in rest["submissions"]] == [newest_first[2]] and rest["next_cursor"] is None
    every = (await cli(api, alice, "jobs", "--json", tmp_path=tmp_path)).json()
    assert [s["submission_id"] for s in every] == newest_first


async def test_an_admin_rebuilds_the_view_and_waits(api: Api, board_kv: KeyValue, tmp_path: Path) -> None:
    asked = (await cli(api, ADMIN_TOKEN, "admin", "leaderboard", "rebuild", "--json", tmp_path=tmp_path)).json()
    stored = await board_kv.get(keys.BOARD_REBUILD_KEY)
    assert BoardRebuild.model_validate_json(stored.value or b"").request_id == asked["request_id"]

    async def dispatcher_answers() -> None:
        """What the dispatcher does once it has rebuilt the view (dispatcher/board.py): `meta.built`."""
        while True:
            found = await board_kv.get(keys.BOARD_REBUILD_KEY)
            request = BoardRebuild.model_validate_json(found.value or b"")
            if request.request_id != asked["request_id"]:
                built = BoardBuilt(request_id=request.request_id, built_at=utcnow(), entries=7, took_s=1.5)
                await board_kv.put(keys.BOARD_BUILT_KEY, built.model_dump_json().encode())
                return
            await asyncio.sleep(0.1)

    answering = asyncio.create_task(dispatcher_answers())
    done = await cli(api, ADMIN_TOKEN, "admin", "leaderboard", "rebuild", "--wait", tmp_path=tmp_path)
    await answering
    assert done.code == 0 and "rebuilt: 7 entries in 1.5 s" in done.stderr

"""GET /api/v1/leaderboard through the real ingest app, real nats-server and SeaweedFS: boards served from the
view's bucket (entries put there as the dispatcher keeps them) and the replicates in the store (as the scorer
writes them); the admin's rebuild request."""

from __future__ import annotations

from typing import Any

import pytest
from nats.js.kv import KeyValue

from leadersboard import keys
from leadersboard.models.base import utcnow
from leadersboard.models.board import BoardBuilt, BoardRebuild
from leadersboard.s3 import S3Client, make_client
from leadersboard.settings import S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer
from tests.leaderboard_fixtures import (
    AUROC,
    RESAMPLES,
    Published,
    publish,
    publish_demo,
    scored,
    self_reported,
    until,
    vectors,
)
from tests.test_ingest_api import error_of

pytestmark = pytest.mark.timeout(120)
F1 = "image_F1Max"


@pytest.fixture
def s3(s3_settings: S3Settings) -> S3Client:
    return make_client(s3_settings)


@pytest.fixture
async def demo(board_kv: KeyValue, s3: S3Client, s3_settings: S3Settings) -> Published:
    return await publish_demo(board_kv, s3, s3_settings.bucket)


def ids(board: dict[str, Any]) -> list[str]:
    return [entry["submission_id"] for entry in board["entries"]]


async def test_a_verified_board_ranks_with_intervals_ties_and_rank_ranges(
    api: Api, alice: str, demo: Published
) -> None:
    board = await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    order = ["alice", "bob", "dave", "carol", "erin"]
    assert ids(board) == [demo[name][0].submission_id for name in order]
    rows = {row["user"]: row for row in board["entries"]}
    assert {key: board[key] for key in board if key != "entries"} == {
        "kind": "verified", "benchmark": "demo", "benchmark_version": 1, "versions": [1, 2], "metric": AUROC,
        "metrics": [AUROC, F1, "pixel_AUROC"], "category": "average", "categories": ["bottle", "wood"],
        "label": "verified (public test labels)", "higher_is_better": True, "best_per_user": True,
        "confidence": 0.95, "resamples": RESAMPLES, "total": 5, "missing": 0, "offset": 0, "limit": 100,
    }  # fmt: skip
    leader = rows["alice"]
    expected = demo["alice"][0]
    assert leader["rank"] == 1 and leader["tied_with_leader"] is None and leader["diff_ci"] is None
    assert (leader["method"], leader["benchmark"], leader["benchmark_version"], leader["verified"]) == (
        "padim", "demo", 1, True,
    )  # fmt: skip
    assert leader["mlflow_run_url"] == expected.mlflow_run_url
    assert leader["submitted_at"] == expected.created_at.isoformat().replace("+00:00", "Z")
    assert leader["value"] == pytest.approx(expected.scores.image_AUROC.value if expected.scores else None)
    # The near copy: tied with the leader by the paired bootstrap, so its rank may be 1.
    assert rows["bob"]["tied_with_leader"] is True and rows["bob"]["rank_range"][0] == 1
    low, high = rows["bob"]["diff_ci"]["ci_low"], rows["bob"]["diff_ci"]["ci_high"]
    assert low <= 0 <= high
    # Paired from scores.json alone (no packed file), and clearly behind.
    assert rows["dave"]["tied_with_leader"] is False
    assert rows["dave"]["diff_ci"]["value"] == pytest.approx(0.15, abs=0.01)
    assert rows["carol"]["tied_with_leader"] is False and rows["carol"]["rank_range"] == [4, 4]
    # Unreadable replicates: no tie either way, the rest of the row stands.
    assert rows["erin"]["tied_with_leader"] is None and rows["erin"]["diff_ci"] is None and rows["erin"]["rank"] == 5
    for row in board["entries"]:
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        assert row["rank_range"][0] <= row["rank"] <= row["rank_range"][1]


async def test_the_board_asked_for(api: Api, alice: str, demo: Published) -> None:
    latest = await until(api, alice, lambda b: b["total"] == 1, benchmark="demo")
    assert (latest["benchmark_version"], ids(latest)) == (2, [demo["frank"][0].submission_id])

    everyone = await until(api, alice, lambda b: b["total"] == 6, benchmark="demo", version="1", all="true")
    assert everyone["best_per_user"] is False
    assert [row["user"] for row in everyone["entries"]] == ["alice", "bob", "dave", "carol", "carol", "erin"]

    page = await until(api, alice, lambda b: True, benchmark="demo", version="1", limit="2", offset="2")
    assert (page["total"], page["offset"], page["limit"]) == (5, 2, 2)
    assert [(row["user"], row["rank"]) for row in page["entries"]] == [("dave", 3), ("carol", 4)]
    assert page["entries"][0]["tied_with_leader"] is False  # paired with a leader not on the page

    bottle = await until(api, alice, lambda b: True, benchmark="demo", version="1", category="bottle")
    assert bottle["category"] == "bottle" and len(bottle["entries"]) == 5
    alice_bottle = demo["alice"][1].scores.per_category["bottle"].image_AUROC
    assert bottle["entries"][0]["value"] == pytest.approx(alice_bottle.value)

    pixel = await until(api, alice, lambda b: True, benchmark="demo", version="1", metric="pixel_AUROC")
    assert [row["user"] for row in pixel["entries"]] == ["alice"] and pixel[
        "missing"
    ] == 5  # counted before best per user


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"metric": "accuracy"}, "metric"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"version": "0"}, "version"),
        ({"version": "latest"}, "version"),
        ({"all": "maybe"}, "all"),
        ({"category": "screw"}, "category"),
        ({"benchmark": ""}, "benchmark"),
    ],
)
async def test_a_bad_value_is_a_400_naming_its_field(
    api: Api, alice: str, demo: Published, query: dict[str, str], field: str
) -> None:
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    response = await api.get("/api/v1/leaderboard", params={"benchmark": "demo", **query}, headers=bearer(alice))
    error = await error_of(response, 400)
    assert error["message"].removeprefix("invalid request: ").startswith(f"{field}:")


async def test_an_unknown_benchmark_or_version_is_a_404(api: Api, alice: str, demo: Published) -> None:
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    for query, field in (({"benchmark": "nope"}, "benchmark"), ({"benchmark": "demo", "version": "7"}, "version")):
        error = await error_of(await api.get("/api/v1/leaderboard", params=query, headers=bearer(alice)), 404)
        assert error["message"].startswith(f"{field}:")


async def test_the_board_follows_the_view(
    api: Api, alice: str, demo: Published, board_kv: KeyValue, s3: S3Client, s3_settings: S3Settings
) -> None:
    """A new best job, a rescore and a deletion show on the next request (the computed board is not kept stale)."""
    await until(api, alice, lambda b: b["total"] == 5, benchmark="demo", version="1")
    entry, file = scored("erin", vectors(0.2), minutes=9)
    await publish(board_kv, s3, s3_settings.bucket, entry, file)
    board = await until(api, alice, lambda b: b["entries"][0]["user"] == "erin", benchmark="demo", version="1")
    assert board["total"] == 5 and board["entries"][1]["tied_with_leader"] is False  # erin's best replaced her old

    await board_kv.delete(keys.kv_board_key("erin", entry.submission_id))
    board = await until(api, alice, lambda b: b["entries"][0]["user"] == "alice", benchmark="demo", version="1")
    assert [row["user"] for row in board["entries"]][-1] == "erin"

    rescored, refile = scored("carol", vectors(0.2), minutes=3)  # carol's job scored again, now the best
    rescored = rescored.model_copy(update={"submission_id": demo["carol"][0].submission_id, "finished_at": utcnow()})
    await publish(board_kv, s3, s3_settings.bucket, rescored, refile)
    board = await until(api, alice, lambda b: b["entries"][0]["user"] == "carol", benchmark="demo", version="1")
    assert board["entries"][1]["tied_with_leader"] is False  # paired with carol's new replicates, not the old


async def test_the_self_reported_board_is_apart_and_labelled(
    api: Api, alice: str, demo: Published, board_kv: KeyValue, s3: S3Client, s3_settings: S3Settings
) -> None:
    claims = [
        self_reported("alice", "bottle", {AUROC: 0.8}),
        self_reported("bob", "bottle", {AUROC: 0.95}),
        self_reported("dave", "cable", {AUROC: 0.9, "loss": 0.2}),
    ]
    for entry in claims:
        await publish(board_kv, s3, s3_settings.bucket, entry)
    board = await until(api, alice, lambda b: len(b["entries"]) == 3)
    assert (board["kind"], board["label"], board["benchmarks"]) == ("self_reported", "self-reported", ["demo"])
    assert [(row["rank"], row["user"], row["value"]) for row in board["entries"]] == [
        (1, "bob", 0.95),
        (2, "dave", 0.9),
        (3, "alice", 0.8),
    ]  # fmt: skip  (no verified entry: their scores rank them on their own board)
    assert board["datasets"] == ["bottle", "cable"]
    bottle = await until(api, alice, lambda b: True, dataset="bottle")
    assert [row["user"] for row in bottle["entries"]] == ["bob", "alice"]
    assert (await until(api, alice, lambda b: True, metric="loss"))["entries"][0]["user"] == "dave"
    too_long = await api.get("/api/v1/leaderboard", params={"metric": "m" * 201}, headers=bearer(alice))
    assert (await error_of(too_long, 400))["message"].startswith("invalid request: metric")


async def test_an_admin_asks_for_a_rebuild_and_reads_the_last_one(api: Api, alice: str, board_kv: KeyValue) -> None:
    path = "/api/v1/admin/leaderboard/rebuild"
    await error_of(await api.post(path, headers=bearer(alice)), 403)
    await error_of(await api.get(path, headers=bearer(ADMIN_TOKEN)), 404)

    response = await api.post(path, headers=bearer(ADMIN_TOKEN))
    assert response.status == 202
    request_id = (await response.json())["request_id"]
    asked = BoardRebuild.model_validate_json((await board_kv.get(keys.BOARD_REBUILD_KEY)).value or b"")
    assert (asked.request_id, asked.requested_by) == (request_id, "admin")

    built = BoardBuilt(request_id=request_id, built_at=utcnow(), entries=12, took_s=0.5)  # the dispatcher's answer
    await board_kv.put(keys.BOARD_BUILT_KEY, built.model_dump_json().encode())
    response = await api.get(path, headers=bearer(ADMIN_TOKEN))
    assert response.status == 200 and BoardBuilt.model_validate(await response.json()) == built

"""The verified leaderboard through the real local stack (issue 14), with the real CLI, API and web page.

Three users submit to the synthetic benchmark of examples/padim-benchmark: alice a cheap model (how far the top
rows of an image are from the train images' mean brightness: about 0.85 image_AUROC, so the intervals are wide
enough to mean something), bob a near copy of it (the same scores, each off by a seeded 2%: tied with whichever of
the two leads), and mallory a liar (random predictions, a metrics.json claiming 0.99). The board puts mallory last
at its verified value; every interval holds its value; the view (the dispatcher's `lb_board` bucket) survives a
restart of ingest and of the dispatcher, and a rebuild after it is lost; the page draws it. No training: the
jobs take seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadersboard import keys, nats_io
from leadersboard.models.records import JobRecord, JobStatus
from tests.stack_fixtures import client_for, running_stack, write_submission
from tests.test_benchmark_stack import cli
from tests.web_fixtures import ARTIFACTS, CHROMIUM_ARGS, sign_in
from tools.stack.up import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "padim-benchmark"
NAME = "synthetic"
TEST_GOOD = TEST_DEFECTIVE = 20
JOB_TIMEOUT_S = 600.0
SETTLE_S = 120.0
"""How long ingest may take to show a change of the view (it follows a KV watch; seconds on a loaded machine)."""
CLAIM = 0.99

MODEL = """
import numpy as np
from PIL import Image
NOISE = {noise}
benchmark = pathlib.Path("benchmark")
index = json.loads((benchmark / "index.json").read_text())
def top(path):
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return pixels[: int(pixels.shape[0] * 0.45)].mean()
rng = np.random.default_rng(3)
rows = []
for name, category in sorted(index["categories"].items()):
    mean = float(np.mean([top(path) for path in sorted((benchmark / name / "train" / "good").iterdir())]))
    for file in sorted(category["test"]):
        score = float(abs(top(benchmark / name / "test" / file) - mean) * (1 + NOISE * rng.normal()))
        rows.append(f"{{file.rsplit('.', 1)[0]}},{{score!r}}")
(out / "predictions").mkdir()
(out / "predictions" / "scores.csv").write_text("image_id,score\\n" + "\\n".join(rows) + "\\n")
(out / "metrics.json").write_text(json.dumps({{"metrics": {{"image_AUROC": 0.5}}}}))
"""
LIAR = """
import random
index = json.loads(pathlib.Path("benchmark/index.json").read_text())
ids = sorted(name.rsplit(".", 1)[0] for category in index["categories"].values() for name in category["test"])
rng = random.Random(11)
(out / "predictions").mkdir()
rows = [f"{image_id},{rng.random()!r}" for image_id in ids]
(out / "predictions" / "scores.csv").write_text("image_id,score\\n" + "\\n".join(rows) + "\\n")
(out / "metrics.json").write_text(json.dumps({"params": {"method": "liar"}, "metrics": {"image_AUROC": CLAIM}}))
""".replace("CLAIM", repr(CLAIM))
SELF_REPORTED = """
(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.97}}))
"""
SUBMISSIONS = {
    "alice": ("alice", MODEL.format(noise=0.0), NAME),
    "bob": ("bob", MODEL.format(noise=0.02), NAME),
    "mallory": ("mallory", LIAR, NAME),
    "alice_self": ("alice", SELF_REPORTED, None),
}
"""label: (user, main.py's body, benchmark). Submitted in this order: alice's model is the earlier of two equal
values; her self-reported job (no benchmark) is her newest."""
JOBS_PAGE = 1
"""The page's job list, one job a page: alice's two jobs take a "Show older jobs"."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    """The default stack, with the web page (the board's plot is checked in Chromium), its job list paged by one."""
    overrides = {"frontend": {"jobs_page_size": JOBS_PAGE}}
    with running_stack(
        tmp_path_factory.mktemp("leaderboard-stack"), with_frontend=True, overrides=overrides
    ) as started:
        yield started


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture(scope="module")
def jobs(
    stack: tuple[Stack, dict[str, Any]], home: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, JobRecord]:
    """The benchmark registered by the admin, then every job of SUBMISSIONS, followed to its end (by label)."""
    info = stack[1]
    source = tmp_path_factory.mktemp("source") / NAME
    sizes = ["--test-good", str(TEST_GOOD), "--test-defective", str(TEST_DEFECTIVE)]
    subprocess.run([sys.executable, str(EXAMPLE / "make_benchmark.py"), str(source), *sizes], check=True, timeout=300)
    cli(info, "admin_token", "admin", "benchmark", "add", NAME, str(source), "--license", "MIT", home=home)
    root = tmp_path_factory.mktemp("submissions")
    ids: dict[str, str] = {}
    for label, (user, body, benchmark) in SUBMISSIONS.items():
        info.setdefault(f"{user}_token", token(info, user))
        with client_for(info, f"{user}_token") as client:
            metadata = {"method": f"{user}'s method", "description": f"by {user}"}
            path = write_submission(root / label, body)
            ids[label] = client.submit([path], benchmark=benchmark, metadata=metadata)
    done: dict[str, JobRecord] = {}
    for label, sid in ids.items():
        with client_for(info, f"{SUBMISSIONS[label][0]}_token") as client:
            done[label] = client.wait(sid, timeout_s=JOB_TIMEOUT_S)
        assert done[label].status is JobStatus.COMPLETED, (label, done[label].error)
    return done


def token(info: dict[str, Any], user: str) -> str:
    headers = {"Authorization": f"Bearer {info['admin_token']}"}
    response = httpx.post(f"{info['urls']['api']}/admin/tokens", json={"user": user}, headers=headers, timeout=30)
    assert response.status_code < 300, response.text
    return str(response.json()["token"])


def board(info: dict[str, Any], **query: str) -> dict[str, Any]:
    """GET /api/v1/leaderboard as alice (any user sees the same board)."""
    headers = {"Authorization": f"Bearer {info['alice_token']}"}
    response = httpx.get(f"{info['urls']['api']}/leaderboard", params=query, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def rows(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["user"], entry["submission_id"]) for entry in answer["entries"]]


def test_the_liar_is_last_at_its_verified_value_and_the_near_copy_is_tied_with_the_leader(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord], home: Path
) -> None:
    answer = board(stack[1], benchmark=NAME)
    assert (answer["kind"], answer["benchmark"], answer["benchmark_version"]) == ("verified", NAME, 1)
    assert (answer["metric"], answer["category"], answer["total"], answer["missing"]) == (
        "image_AUROC",
        "average",
        3,
        0,
    )
    assert answer["label"] == "verified (public test labels)" and answer["categories"] == ["carpet", "leather"]
    leader, second, last = answer["entries"]
    assert {leader["user"], second["user"]} == {"alice", "bob"}, "the model and its copy lead"
    assert leader["value"] > 0.7, leader
    assert (leader["tied_with_leader"], leader["diff_ci"]) == (None, None), "the leader is the reference"
    assert second["tied_with_leader"] is True, second
    assert second["diff_ci"]["ci_low"] <= 0 <= second["diff_ci"]["ci_high"]
    assert second["rank_range"][0] == 1, "tied with the leader: it may be first"

    liar = jobs["mallory"]
    assert liar.metrics["image_AUROC"] == CLAIM and liar.scores is not None
    assert (last["user"], last["rank"], last["rank_range"]) == ("mallory", 3, [3, 3])
    assert last["value"] == liar.scores.image_AUROC.value < 0.7, "at its verified value, not its claim"
    assert last["tied_with_leader"] is False and last["diff_ci"]["ci_low"] > 0
    assert jobs["alice_self"].submission_id not in {sid for _, sid in rows(answer)}
    for entry in answer["entries"]:
        record = jobs[entry["user"]]
        assert record.scores is not None and entry["value"] == record.scores.image_AUROC.value
        assert (entry["submission_id"], entry["verified"], entry["method"]) == (
            record.submission_id, True, f"{entry['user']}'s method")  # fmt: skip
        assert entry["mlflow_run_url"] == record.mlflow_run_url and entry["benchmark_version"] == 1

    self_reported = board(stack[1])
    assert (self_reported["kind"], self_reported["label"]) == ("self_reported", "self-reported")
    assert self_reported["benchmarks"] == [NAME]
    assert rows(self_reported) == [("alice", jobs["alice_self"].submission_id)], (
        "only the job without a benchmark: a benchmark job's own claims never reach a board"
    )

    printed = cli(stack[1], "alice_token", "leaderboard", "--benchmark", NAME, home=home)
    assert rows(printed) == rows(answer) and printed["entries"] == answer["entries"], "the CLI shows the same board"


def test_every_interval_holds_its_value_in_every_category_and_metric(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord]
) -> None:
    for category in ("average", "carpet", "leather"):
        for metric in ("image_AUROC", "image_F1Max"):
            answer = board(stack[1], benchmark=NAME, category=category, metric=metric, all="true")
            assert len(answer["entries"]) == 3, (category, metric)
            for entry in answer["entries"]:
                assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], (category, metric, entry)
                assert entry["rank_range"][0] <= entry["rank"] <= entry["rank_range"][1], entry
    pixel = board(stack[1], benchmark=NAME, metric="pixel_AUROC")
    assert (pixel["entries"], pixel["missing"]) == ([], 3), "no anomaly maps: no pixel metric, and it is said"


def test_the_view_survives_restarts_and_a_rebuild_after_it_is_lost(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord], home: Path
) -> None:
    the_stack, info = stack
    before = board(info, benchmark=NAME)["entries"]
    the_stack.restart("ingest").wait_ready(120)
    assert settled(info, before) == before, "ingest restarted loads the view again"

    # The dispatcher, stopped while an entry is lost, finds the view at its start and reconciles it.
    the_stack.process("dispatcher").stop()
    liar = jobs["mallory"]
    assert asyncio.run(purge_view(the_stack, keys.kv_board_key(liar.user, liar.submission_id))) == 1
    assert len(settled(info, before[:2])) == 2, "ingest follows the view: the liar's entry is gone"
    the_stack.restart("dispatcher")
    assert settled(info, before) == before, "the restarted dispatcher put the entry back"

    # A view lost altogether: an admin's rebuild restores it from the job records.
    assert asyncio.run(purge_view(the_stack, "e.>")) == len(jobs), "one entry per completed job"
    assert settled(info, []) == []
    built = cli(info, "admin_token", "admin", "leaderboard", "rebuild", "--wait", home=home)
    assert built["entries"] == len(jobs) and built["request_id"], built
    assert settled(info, before) == before, "rebuilt from the job records"


def settled(info: dict[str, Any], expected: list[dict[str, Any]], timeout_s: float = SETTLE_S) -> list[Any]:
    """The verified board's entries once they are `expected` (none: a 404), or as they are after `timeout_s`:
    ingest follows the view as the dispatcher writes it, a moment later."""
    headers = {"Authorization": f"Bearer {info['alice_token']}"}
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{info['urls']['api']}/leaderboard", params={"benchmark": NAME}, headers=headers,
                             timeout=60)  # fmt: skip
        entries = response.json()["entries"] if response.status_code == 200 else []
        if entries == expected or time.monotonic() > deadline:
            return list(entries)
        time.sleep(0.5)


async def purge_view(stack: Stack, pattern: str) -> int:
    """Delete the view's entries matching `pattern` behind the dispatcher's back; how many there were."""
    nc = await nats_io.connect(stack.nats, name="test-purge")
    try:
        kv = await nc.jetstream().key_value(stack.nats.board_kv_bucket)
        found = await nats_io.kv_keys(kv, pattern)
        for key in found:
            await kv.purge(key)
        return len(found)
    finally:
        await nc.close()


def test_the_page_draws_each_interval_marks_the_tie_and_expands_a_category(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord], chromium: Path
) -> None:
    from playwright.sync_api import sync_playwright

    info = stack[1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(info["urls"]["frontend"] + "/#board")
            sign_in(page, info["alice_token"])
            check_board_page(page, jobs)
            check_jobs_paging(page, jobs)
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def check_board_page(page: Any, jobs: dict[str, JobRecord]) -> None:
    plot = "#lb-verified-result > .lb-verified-board .lb-plot"
    page.wait_for_selector(f"{plot} .lb-plot-row")
    assert page.input_value("#lb-board-benchmark") == NAME
    drawn = page.eval_on_selector_all(
        f"{plot} .lb-plot-row",
        "rows => rows.map(r => [r.dataset.id, r.querySelectorAll('.lb-plot-ci').length,"
        " r.querySelectorAll('.lb-plot-dot').length])",
    )
    by_user = {record.submission_id: user for user, record in jobs.items()}
    assert [by_user[sid] for sid, _, _ in drawn][2] == "mallory", "the liar is drawn last"
    assert [(ci, dot) for _, ci, dot in drawn] == [(1, 1)] * 3, "one interval and one dot per entry"
    assert page.locator(f"{plot} .lb-plot-band").count() == 1, "the leader's interval, shaded"
    tied = page.eval_on_selector_all(f"{plot} .lb-plot-tied", "rows => rows.map(r => r.dataset.id)")
    assert len(tied) == 1 and by_user[tied[0]] in ("alice", "bob")
    assert "≈ leader" in page.inner_text(f'#lb-verified-result tr[data-id="{tied[0]}"]')
    liar_row = page.inner_text(f'#lb-verified-result tr[data-id="{jobs["mallory"].submission_id}"]')
    assert "mallory" in liar_row and "Δ" in liar_row and "≈" not in liar_row, liar_row
    assert "self-reported" in page.inner_text("#lb-board-self h3").lower()
    claimed = page.inner_text(f'#lb-board-self tr[data-id="{jobs["alice_self"].submission_id}"]')
    assert "0.9700" in claimed, "alice's own claim is shown, apart"
    assert page.locator(f'#lb-verified-result tr[data-id="{jobs["alice_self"].submission_id}"]').count() == 0
    page.screenshot(path=str(ARTIFACTS / "40-verified-board.png"), full_page=True)

    page.click('#lb-board-categories details[data-category="carpet"] summary')
    page.wait_for_selector('details[data-category="carpet"] .lb-plot .lb-plot-row')
    assert page.locator('details[data-category="carpet"] .lb-plot-row').count() == 3
    assert page.locator('details[data-category="leather"] .lb-plot').count() == 0, "closed until opened"
    page.screenshot(path=str(ARTIFACTS / "41-verified-category.png"), full_page=True)

    page.click("#lb-lang-ja")
    assert "検証済み" in page.inner_text("#lb-board-verified h3")
    assert "自己申告" in page.inner_text("#lb-board-self h3")
    assert "≈ 首位と同等" in page.inner_text(f'#lb-verified-result tr[data-id="{tied[0]}"]')
    assert "首位と同等" in (page.text_content(f"{plot} .lb-plot-tied") or "")  # SVG: no inner_text
    assert page.locator('details[data-category="carpet"] .lb-plot-row').count() == 3, "still open"
    page.screenshot(path=str(ARTIFACTS / "42-verified-board-ja.png"), full_page=True)
    page.click("#lb-lang-en")


def check_jobs_paging(page: Any, jobs: dict[str, JobRecord]) -> None:
    """alice's newest job on the first page (of one), her older one after "Show older jobs"."""
    newest, older = jobs["alice_self"].submission_id, jobs["alice"].submission_id
    page.click("#lb-tab-jobs")
    page.wait_for_selector(f'#lb-jobs-body tr[data-id="{newest}"]')
    assert page.locator("#lb-jobs-body tr").count() == JOBS_PAGE and page.is_visible("#lb-jobs-more")
    page.click("#lb-jobs-more")
    page.wait_for_selector(f'#lb-jobs-body tr[data-id="{older}"]')
    assert page.is_hidden("#lb-jobs-more"), "no older job left"
    page.click("#lb-jobs-reload")  # a reload of the first page keeps the older one shown
    page.wait_for_function("() => !document.querySelector('#lb-jobs-refresh .lb-spinner')")
    ids = page.eval_on_selector_all("#lb-jobs-body tr", "rows => rows.map(r => r.dataset.id)")
    assert ids == [newest, older], ids

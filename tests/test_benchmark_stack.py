"""Official benchmarks through the real local stack (issue 13, item 9), with the real CLI and client.

The admin registers the synthetic benchmark of examples/padim-benchmark with `leadersboard admin benchmark add`;
the demo user submits the PaDiM example on it, a liar (random scores, a metrics.json claiming 1.0), a job that
searches the whole filesystem for labels and masks, and two jobs whose predictions cannot be scored; the scorer
service scores them; an admin's rescore scores them again; the web page's Benchmark select lists it.

One stack for the module (starting one takes a minute), with the web page. The `jobs` fixture submits every job
at once, the quick ones first and the PaDiM run (minutes on a CPU) last, and waits for all of them; each test
then checks its own. Covered elsewhere, and not repeated here: the runner's store credential refused on the
reference bucket (tests/test_store_identities.py, with the identities a stack hands its runner).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from gpu_runner.results import NO_PREDICTIONS
from leadersboard import keys
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Interval, MetricSet, ScoresFile
from leadersboard.s3 import make_client
from leadersboard.scoring.score import SCORER_VERSION
from tests.stack_fixtures import client_for, mlflow_admin_url, running_stack, write_submission
from tests.web_fixtures import CHROMIUM_ARGS, sign_in
from tools.stack.up import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "padim-benchmark"
CLI = str(Path(sys.executable).parent / "leadersboard")
NAME = "synthetic"
TEST_GOOD = TEST_DEFECTIVE = 20
"""Per category (make_benchmark's default is 10 + 10). With 2 categories of 20 + 20, a random guess's
image_AUROC (the category mean) has a standard deviation of about 0.065: the liar's bound of 0.25 is about
4 of them, where 10 + 10 would make it under 3 (the test ids are random at each registration)."""
JOB_TIMEOUT_S = 900.0
RESCORE_TIMEOUT_S = 300.0

RANDOM_SCORES = """
import random
index = json.loads(pathlib.Path("benchmark/index.json").read_text())
ids = sorted(name.rsplit(".", 1)[0] for category in index["categories"].values() for name in category["test"])
rng = random.Random(7)
rows = [f"{image_id},{rng.random()!r}" for image_id in ids][SKIPPED:]
predictions = out / "predictions"
predictions.mkdir()
(predictions / "scores.csv").write_text("image_id,score\\n" + "\\n".join(rows) + "\\n")
(out / "metrics.json").write_text(json.dumps({"params": {"method": "liar"}, "metrics": {"image_AUROC": 1.0}}))
"""
SEARCHES_EVERYTHING = """
import os
wanted = {"reference.json", "reference.zip", "masks", "ground_truth"}
seen = 0
for top, dirs, files in os.walk("/", onerror=lambda error: None):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in dirs + files:
        seen += 1
        if name in wanted or (os.path.basename(top) == "test" and name in ("good", "bright", "dark")):
            print("FOUND", os.path.join(top, name))
    if seen > 5_000_000:  # bounded: the machine's whole tree is far smaller
        break
print("SEARCHED", seen)
"""
ONLY_METRICS = """
(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 1.0}}))
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, Any]]]:
    """The default stack, with the web page (test_the_submit_forms_benchmark_select_lists_it)."""
    with running_stack(tmp_path_factory.mktemp("benchmark-stack"), with_frontend=True) as started:
        yield started


def cli(info: dict[str, Any], token_key: str, *args: str, home: Path) -> Any:
    """`leadersboard ARGS --json` as a subprocess with the token `info[token_key]`; its parsed output."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADERSBOARD_")}
    env |= {"LEADERSBOARD_URL": info["urls"]["ingest"], "LEADERSBOARD_TOKEN": info[token_key],
            "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}  # fmt: skip
    done = subprocess.run([CLI, *args, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / NAME
    generator = [sys.executable, str(EXAMPLE / "make_benchmark.py"), str(out)]
    sizes = ["--test-good", str(TEST_GOOD), "--test-defective", str(TEST_DEFECTIVE)]
    subprocess.run([*generator, *sizes], check=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def registered(
    stack: tuple[Stack, dict[str, Any]], source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """`leadersboard admin benchmark add` with the admin's token: its --json answer."""
    home = tmp_path_factory.mktemp("admin-home")
    return dict(cli(stack[1], "admin_token", "admin", "benchmark", "add", NAME, str(source), "--license", "MIT",
                    home=home))  # fmt: skip


@pytest.fixture(scope="module")
def jobs(
    stack: tuple[Stack, dict[str, Any]], registered: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, JobRecord]:
    """Every job of the module, submitted at once by the demo user and followed to its end."""
    root = tmp_path_factory.mktemp("submissions")
    submissions = {
        "liar": write_submission(root / "liar", RANDOM_SCORES.replace("SKIPPED", "0")),
        "missing": write_submission(root / "missing", RANDOM_SCORES.replace("SKIPPED", "1")),
        "no_scores": write_submission(root / "no_scores", ONLY_METRICS),
        "searcher": write_submission(root / "searcher", SEARCHES_EVERYTHING + RANDOM_SCORES.replace("SKIPPED", "0")),
        "padim": EXAMPLE,
    }
    with client_for(stack[1]) as demo:
        ids = {label: demo.submit([path], benchmark=NAME) for label, path in submissions.items()}
        return {label: demo.wait(sid, timeout_s=JOB_TIMEOUT_S) for label, sid in ids.items()}


def intervals(metrics: MetricSet) -> dict[str, Interval]:
    found = {name: getattr(metrics, name) for name in MetricSet.model_fields}
    return {name: interval for name, interval in found.items() if isinstance(interval, Interval)}


def api_record(info: dict[str, Any], sid: str) -> dict[str, Any]:
    """The record as the API shows it (with its derived `verified`), not as the client's model recomputes it."""
    headers = {"Authorization": f"Bearer {info['demo_token']}"}
    response = httpx.get(f"{info['urls']['api']}/submissions/{sid}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def stored_scores(stack: Stack, record: JobRecord) -> ScoresFile:
    s3 = make_client(stack.s3)
    body = s3.get_object(Bucket=stack.s3.bucket, Key=keys.scores_key(record.user, record.submission_id))["Body"]
    return ScoresFile.model_validate_json(body.read())


def test_the_admin_registers_the_benchmark_and_every_user_sees_it_listed(
    stack: tuple[Stack, dict[str, Any]], registered: dict[str, Any], tmp_path: Path
) -> None:
    assert (registered["name"], registered["version"], registered["resumed"]) == (NAME, 1, False)
    assert len(registered["uploaded"]) == 2 and registered["present"] == [], "both parts were sent"
    listed = cli(stack[1], "demo_token", "benchmarks", home=tmp_path)
    assert [(view["name"], view["version"], view["license"], view["layout"]) for view in listed] == [
        (NAME, 1, "MIT", "mvtec_ad")
    ]
    expected = {"train": 30, "test": TEST_GOOD + TEST_DEFECTIVE, "masks": True}
    assert listed[0]["categories"] == {"carpet": expected, "leather": expected}


def test_the_padim_example_is_verified_above_0_9_with_intervals_around_each_value(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord]
) -> None:
    record = jobs["padim"]
    assert record.status is JobStatus.COMPLETED, record.error
    assert (record.benchmark, record.benchmark_version) == (NAME, 1)
    scores = record.scores
    assert scores is not None and scores.image_AUROC.value > 0.9
    assert scores.pixel_AUROC is not None and scores.pixel_AUPRO is not None, "its anomaly maps are scored"
    assert sorted(scores.per_category) == ["carpet", "leather"]
    for where, metrics in {"average": scores, **scores.per_category}.items():
        for metric, interval in intervals(metrics).items():
            assert interval.ci_low <= interval.value <= interval.ci_high, (where, metric, interval)
    shown = api_record(stack[1], record.submission_id)
    assert shown["verified"] is True
    assert shown["scores"]["image_AUROC"] == scores.image_AUROC.model_dump()
    assert record.metrics["test_images"] == 2 * (TEST_GOOD + TEST_DEFECTIVE), "its self-reported metrics stay"

    run = MlflowClient(mlflow_admin_url(stack[1])).get_run(record.mlflow_run_id or "")
    assert run.data.metrics["verified_image_AUROC"] == scores.image_AUROC.value
    assert run.data.metrics["verified_image_AUROC_ci_low"] == scores.image_AUROC.ci_low
    assert run.data.metrics["verified_image_AUROC.carpet"] == scores.per_category["carpet"].image_AUROC.value
    tags = run.data.tags
    assert (tags["leadersboard.benchmark"], tags["leadersboard.benchmark_version"]) == (NAME, "1")
    assert (tags["leadersboard.scorer_version"], tags["leadersboard.verified"]) == (SCORER_VERSION, "true")
    assert stored_scores(stack[0], record).scores == scores


def test_a_liar_claiming_1_0_with_random_scores_is_verified_at_about_0_5(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord]
) -> None:
    record = jobs["liar"]
    assert record.status is JobStatus.COMPLETED, record.error
    assert record.metrics["image_AUROC"] == 1.0, "what it claimed stays, as self-reported"
    assert record.scores is not None and abs(record.scores.image_AUROC.value - 0.5) < 0.25
    assert record.scores.pixel_AUROC is None, "no maps, no pixel metrics"
    assert api_record(stack[1], record.submission_id)["verified"] is True
    run = MlflowClient(mlflow_admin_url(stack[1])).get_run(record.mlflow_run_id or "")
    assert run.data.metrics["image_AUROC"] == 1.0
    assert run.data.metrics["verified_image_AUROC"] == record.scores.image_AUROC.value


def test_predictions_that_cannot_be_scored_fail_with_a_reason_that_gives_no_label_away(
    jobs: dict[str, JobRecord], source: Path
) -> None:
    missing, no_scores = jobs["missing"], jobs["no_scores"]
    assert missing.status is JobStatus.FAILED and missing.scores is None
    assert missing.error is not None
    assert re.fullmatch(
        r"predictions rejected: predictions/scores\.csv: 1 test image ids missing, e\.g\. '[0-9a-f]+'", missing.error
    ), missing.error
    assert missing.scoring_requested_at is not None, "the run ended well: the scorer rejected it"
    assert (no_scores.status, no_scores.error, no_scores.scores) == (JobStatus.FAILED, NO_PREDICTIONS, None)
    assert no_scores.scoring_requested_at is None, "the runner failed it: nothing went to the scorer"
    for record in (missing, no_scores):
        assert not record.verified

    tests = [path.relative_to(source) for path in sorted(source.glob("*/test/*/*.png"))]
    labels = {path.parts[2] for path in tests}
    assert labels == {"good", "bright", "dark"}
    reasons = f"{missing.error}\n{no_scores.error}"
    for label in labels:
        assert not re.search(rf"\b{label}\b", reasons), label
    for path in tests:
        assert f"{path.parts[2]}/{path.name}" not in reasons and path.stem + "_mask" not in reasons


def test_a_job_searching_the_whole_filesystem_finds_no_label_mask_or_reference(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord]
) -> None:
    """On a local stack every service shares one machine: the scorer's extracted references, the store's data
    and the admin's source are all on it (here under /tmp, which a job sees as its own empty tmpfs; the runner
    hides the stack's data directory wherever it is: gpu_runner/sandbox.py)."""
    record = jobs["searcher"]
    assert record.status is JobStatus.COMPLETED, record.error
    with client_for(stack[1]) as demo:
        log, _, _ = demo.logs(record.submission_id)
    assert [line for line in log.splitlines() if line.startswith("FOUND")] == []
    searched = int(next(line for line in log.splitlines() if line.startswith("SEARCHED")).split()[1])
    assert searched > 10_000, "the search walked the job's whole filesystem"


def test_a_rescore_scores_the_stored_predictions_again_and_keeps_each_status(
    stack: tuple[Stack, dict[str, Any]], jobs: dict[str, JobRecord], tmp_path: Path
) -> None:
    the_stack, info = stack
    completed = [jobs["padim"], jobs["liar"], jobs["searcher"]]
    before = {record.submission_id: stored_scores(the_stack, record) for record in completed}
    with client_for(info) as demo:
        records = {record.submission_id: demo.get(record.submission_id) for record in jobs.values()}

    answer = cli(info, "admin_token", "admin", "benchmark", "rescore", NAME, home=tmp_path)
    assert answer == {"benchmark": NAME, "requested": 4}, "padim, the liar, the searcher and the rejected job"

    deadline = time.monotonic() + RESCORE_TIMEOUT_S
    while any(stored_scores(the_stack, r).scored_at == before[r.submission_id].scored_at for r in completed):
        assert time.monotonic() < deadline, f"scores.json was not written again within {RESCORE_TIMEOUT_S:.0f} s"
        time.sleep(1)
    for record in completed:
        again = stored_scores(the_stack, record)
        assert again.scored_at > before[record.submission_id].scored_at
        assert again.scores == before[record.submission_id].scores, "the same predictions score the same"
    with client_for(info) as demo:
        for sid, record in records.items():
            assert demo.get(sid) == record, "the status, the reason and the scores are as they were"
    history = MlflowClient(mlflow_admin_url(info)).get_metric_history(
        jobs["liar"].mlflow_run_id or "", "verified_image_AUROC"
    )
    assert len(history) == 2, "the rescore logged the verified metrics again"


def test_the_page_lists_the_benchmark_and_labels_verified_and_self_reported_metrics(
    stack: tuple[Stack, dict[str, Any]], registered: dict[str, Any], jobs: dict[str, JobRecord], chromium: Path
) -> None:
    from playwright.sync_api import sync_playwright

    info = stack[1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(info["urls"]["frontend"])
            sign_in(page, info["demo_token"])
            page.wait_for_selector(f'#lb-benchmark option[value="{NAME}"]', state="attached")
            options = page.eval_on_selector_all("#lb-benchmark option", "nodes => nodes.map(n => [n.value, n.text])")
            assert [value for value, _ in options] == ["", NAME]
            assert options[1][1] == f"{NAME} v1"
            page.select_option("#lb-benchmark", NAME)
            shown = page.inner_text("#lb-benchmark-info")
            assert f"{NAME} v1: 2 categories, {2 * (TEST_GOOD + TEST_DEFECTIVE)} test images" in shown, shown
            liar = f'#lb-jobs-body tr[data-id="{jobs["liar"].submission_id}"]'
            page.click("#lb-tab-jobs")
            page.wait_for_selector(liar)
            row = page.inner_text(liar)
            assert "verified (public test labels)" in row and "self-reported" in row, row
            assert row.index("verified (public test labels)") < row.index("self-reported"), "the platform's first"
        finally:
            browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"

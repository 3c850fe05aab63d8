"""MLflow reads like a model-evaluation tracker (issue 17): Chromium on the local stack's MLflow, through ingest's
proxy on the public port, as a user opens it. Three self-reported jobs run by the runner (three spellings of one
dataset) and three benchmark runs logged and scored with the runner's and the scorer's own functions.
Screenshots: test-artifacts/mlflow/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from gpu_runner.tracking import SubmissionLinks, TrackedRun, log_run
from ingest.mlflow_ui import UI_DEFAULTS, with_ui_defaults
from leadersboard.experiments import TAG_NOTE, runs_url
from leadersboard.models.base import utcnow
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.scores import Interval, MetricSet, Scores
from scorer.tracking import log_verified
from tests.stack_fixtures import client_for, mlflow_admin_url, write_submission
from tests.web_fixtures import CHROMIUM_ARGS, ROOT
from tools.stack.up import Stack

ARTIFACTS = ROOT / "test-artifacts" / "mlflow"
SELF_REPORTED = [("padim", "pcb1", 0.91), ("patchcore", "visa/pcb1", 0.97), ("efficientad", "VisA-PCB1", 0.88)]
BENCHMARK = [("padim", "alice", 0.81), ("patchcore", "bob", 0.96), ("efficientad", "carol", 0.74)]
METRICS_BODY = """
import json
(out / "metrics.json").write_text(json.dumps({{"params": {{"epochs": 1}}, "metrics": {{"image_AUROC": {value}}}}}))
"""
# The Compare page's metrics: a grid of names and, beside it, a grid of values; a row's cells share its `top`.
COMPARE_ROW = """(metric) => {
  const name = [...document.querySelectorAll('a[title="Plot chart"]')].find((a) => a.textContent === metric);
  if (!name) return null;
  const top = name.parentElement.style.top;
  const values = name.closest('[role=grid]').parentElement.parentElement.querySelectorAll('[role=grid]')[1];
  return [...values.querySelectorAll('span')].filter((s) => s.parentElement.style.top === top)
    .sort((a, b) => parseFloat(a.parentElement.style.left) - parseFloat(b.parentElement.style.left))
    .map((s) => s.textContent);
}"""


def test_the_proxy_gives_a_new_browser_model_training_and_no_assistant_panel() -> None:
    page = b'<!doctype html><html><head><meta charset="utf-8"/><script defer src="main.js"></script></head></html>'
    served = with_ui_defaults(page)
    parts = re.fullmatch(rb"(.*?<head>)(<script>.*?</script>)(.*)", served, re.S)
    assert parts is not None, served
    head, script, rest = parts.groups()
    assert head + rest == page
    for key, value in UI_DEFAULTS.items():
        assert json.dumps(key).encode() in script and json.dumps(json.dumps(value)).encode() in script
    assert b"localStorage.getItem(k)===null" in script  # the user's own choice is kept
    assert with_ui_defaults(b"<html>no head</html>") == b"<html>no head</html>"


@pytest.fixture(scope="module")
def self_reported(stack: tuple[Stack, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> list[JobRecord]:
    """Three jobs of the demo user, through the runner, each naming the dataset its own way."""
    root = tmp_path_factory.mktemp("mlflow-ui")
    with client_for(stack[1]) as demo:
        ids = [
            demo.submit([write_submission(root / method, METRICS_BODY.format(value=value))],
                        metadata={"method": method, "dataset": dataset, "description": f"{method} on pcb1"})
            for method, dataset, value in SELF_REPORTED
        ]  # fmt: skip
        records = [demo.wait(sid, timeout_s=300) for sid in ids]
    assert [r.status for r in records] == [JobStatus.COMPLETED] * 3, [r.error for r in records]
    return records


@pytest.fixture(scope="module")
def benchmark_runs(stack: tuple[Stack, dict[str, Any]]) -> list[TrackedRun]:
    """Three benchmark jobs' runs as the runner logs them, then scored as the scorer logs its scores."""
    uri, runs = mlflow_admin_url(stack[1]), []
    links = SubmissionLinks(web_url=stack[1]["urls"]["frontend"], api_url=stack[1]["urls"]["ingest"])
    for index, (method, user, value) in enumerate(BENCHMARK):
        record = JobRecord(
            submission_id=_benchmark_id(index), user=user, entrypoint="main.py", config="config.yaml",
            created_at=utcnow(), metadata={"method": method}, benchmark="synth", benchmark_version=2,
        )  # fmt: skip
        metrics = MetricsFile.model_validate({"metrics": {"image_AUROC": value + 0.01}})
        tracked = log_run(
            uri, record, dataset="benchmark:synth", metrics=metrics, wall_time_s=10.0 + index, artifacts=[],
            outputs=[], output_root=Path("."), succeeded=True, links=links,
        )  # fmt: skip
        interval = Interval(value=value, ci_low=value - 0.03, ci_high=value + 0.02)
        average = MetricSet(image_AUROC=interval, image_F1Max=interval)
        scores = Scores(**dict(average), per_category={"a": average}, scorer_version="1", resamples=100, seed=0)
        log_verified(uri, tracked.run_id, scores, benchmark="synth", benchmark_version=2)
        runs.append(tracked)
    return runs


@pytest.fixture(scope="module")
def mlflow_page(stack: tuple[Stack, dict[str, Any]], chromium: Path) -> Iterator[Any]:
    """A new browser of the demo user, signed in to MLflow with their user name and API token."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    token = stack[1]["demo_token"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 1920, "height": 1000}, http_credentials={"username": "demo", "password": str(token)}
        )
        page = context.new_page()
        page.set_default_timeout(90_000)
        yield page
        browser.close()


def _short(record: JobRecord) -> str:
    return record.submission_id[:7]


def _benchmark_id(index: int) -> str:
    return f"{index}ab{index}" * 6


def _row_index(page: Any, run_name: str) -> int:
    """The row of the runs table that shows `run_name` (0: the top one)."""
    return int(page.locator(".ag-row", has=page.get_by_text(run_name, exact=True)).first.get_attribute("row-index"))


@pytest.mark.slow
def test_one_dataset_is_one_experiment_that_opens_on_its_runs(
    stack: tuple[Stack, dict[str, Any]], self_reported: list[JobRecord], mlflow_page: Any
) -> None:
    mlflow = stack[1]["urls"]["mlflow"]
    assert {r.dataset for r in self_reported} == {"pcb1"}
    runs = [MlflowClient(mlflow_admin_url(stack[1])).get_run(r.mlflow_run_id or "") for r in self_reported]
    assert len({run.info.experiment_id for run in runs}) == 1
    experiment_id = runs[0].info.experiment_id
    note = runs[0].data.tags[TAG_NOTE]
    assert f"({stack[1]['urls']['frontend']}/#jobs/{self_reported[0].submission_id})" in note
    assert f"({stack[1]['urls']['ingest']}/api/v1/submissions/{self_reported[0].submission_id})" in note

    page = mlflow_page
    page.goto(f"{mlflow}/#/experiments/{experiment_id}")  # as from MLflow's experiment list
    names = [f"{method} · pcb1 · {_short(r)}" for (method, _, _), r in zip(SELF_REPORTED, self_reported, strict=True)]
    for name in names:
        page.get_by_text(name, exact=True).wait_for()
    assert "/runs" in page.url and "overview" not in page.url, page.url  # the runs table, not the GenAI overview
    page.get_by_text("self-reported: pcb1").first.wait_for()

    page.goto(runs_url(mlflow, experiment_id))  # the platform's view: its main metrics as columns, best first
    page.locator('[role=columnheader][col-id="metrics.`image_AUROC`"]').wait_for()
    page.get_by_text("patchcore · pcb1", exact=False).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "self-reported-runs.png"))
    for assistant in ("Welcome to MLflow Assistant", "Ask questions about your experiments"):
        assert not page.get_by_text(assistant).is_visible()  # a new browser: MLflow's panel stays closed
    rows = sorted((_row_index(page, name), name.split(" · ")[0]) for name in names)
    assert [method for _, method in rows] == ["patchcore", "padim", "efficientad"]  # best image_AUROC first


@pytest.mark.slow
def test_a_benchmark_experiment_shows_verified_metrics_and_compares_two_runs(
    stack: tuple[Stack, dict[str, Any]], benchmark_runs: list[TrackedRun], mlflow_page: Any
) -> None:
    page, mlflow = mlflow_page, stack[1]["urls"]["mlflow"]
    page.goto(runs_url(mlflow, benchmark_runs[0].experiment_id))
    for column in ("verified_image_AUROC", "verified_image_AUROC_ci_low", "verified_image_AUROC_ci_high"):
        page.locator(f'[role=columnheader][col-id="metrics.`{column}`"]').wait_for()
    page.get_by_text("benchmark synth (version 2), verified by the platform").first.wait_for()
    names = [f"{method} · synth · {_benchmark_id(index)[:7]}" for index, (method, _, _) in enumerate(BENCHMARK)]
    for name in names:
        page.get_by_text(name, exact=True).wait_for()
    page.screenshot(path=str(ARTIFACTS / "benchmark-runs.png"))

    for name in names[:2]:
        page.locator(f'.ag-row[row-index="{_row_index(page, name)}"] input.ag-checkbox-input').first.click()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("Comparing 2 Runs").wait_for()
    page.get_by_text(names[0], exact=True).first.wait_for()
    page.get_by_text(names[1], exact=True).first.wait_for()
    page.locator('a[title="Plot chart"]', has_text="verified_image_AUROC_ci_low").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "benchmark-compare.png"))
    values = {  # the two runs' values of each metric, side by side in its row
        metric: sorted(page.evaluate(COMPARE_ROW, metric))
        for metric in ("verified_image_AUROC", "verified_image_AUROC_ci_low", "verified_image_AUROC_ci_high")
    }
    assert values == {
        "verified_image_AUROC": ["0.81", "0.96"],
        "verified_image_AUROC_ci_low": ["0.78", "0.93"],
        "verified_image_AUROC_ci_high": ["0.83", "0.98"],
    }

"""The web page's link that every MLflow run's description carries (leadersboard/experiments.py
run_description): `#jobs/<id>` opens the Jobs tab with that job's log. Real stack with the web page, Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leadersboard.experiments import run_description
from leadersboard.models.records import JobStatus
from tests.stack_fixtures import client_for, write_submission
from tests.web_fixtures import shot, sign_in
from tools.stack.up import Stack

BODY = """
print("hello from the linked job")
(out / "metrics.json").write_text('{"metrics": {"image_AUROC": 0.5}}')
"""


@pytest.mark.slow
def test_the_link_in_a_runs_description_opens_the_jobs_log(
    web: tuple[Stack, dict[str, Any]], page: Any, tmp_path: Path
) -> None:
    info = web[1]
    with client_for(info) as demo:
        sid = demo.submit([write_submission(tmp_path / "job", BODY)])
        record = demo.wait(sid, timeout_s=300)
    assert record.status is JobStatus.COMPLETED, record.error
    note = run_description(sid, web_url=info["urls"]["frontend"], api_url=info["urls"]["ingest"])
    link = next(part for part in note.split("(") if part.startswith(info["urls"]["frontend"])).split(")")[0]
    sign_in(page, info["demo_token"])
    page.goto(link)
    page.reload()  # only the fragment changed: load the page again, as a click from MLflow does
    page.wait_for_selector(f"#lb-log-title code:text-is('{sid}')")
    page.wait_for_selector("#lb-log-text:has-text('hello from the linked job')")
    assert page.get_attribute("[role=tab][aria-selected=true]", "id") == "lb-tab-jobs"
    shot(page, "linked-job-log")

"""Deleting a submission from the web page's jobs list, in Chromium, on the whole local stack (issue 15, part 4):
a job the real runner ran and logged to MLflow is deleted with the row's button; its id then answers 404, its
MLflow run is deleted, its objects are gone and the leaderboard no longer shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from leadersboard import keys
from leadersboard.client import ApiError, Client
from leadersboard.s3 import make_client
from tests.stack_fixtures import mlflow_admin_url, write_submission
from tests.web_fixtures import shot, sign_in
from tools.stack.up import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JOB = """
(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.77}, "params": {"method": "to-delete"}}))
"""


def test_the_delete_button_removes_a_finished_submission(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    stack, info = web
    with Client(info["urls"]["ingest"], info["demo_token"]) as client:
        sid = client.submit([write_submission(tmp_path / "job", JOB)], metadata={"method": "to-delete"})
        record = client.wait(sid, timeout_s=300)
    assert record.status == "completed" and record.mlflow_run_id, record
    live = page.locator(f'#lb-jobs-body tr[data-id="{sid}"] .lb-cancel-job')

    sign_in(page, info["demo_token"])
    page.click("#lb-tab-jobs")
    row = f'#lb-jobs-body tr[data-id="{sid}"][data-status="completed"]'
    page.wait_for_selector(row)
    assert live.count() == 0, "a finished job offers delete, not cancel"
    dialogs: list[str] = []

    def confirm(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.click(f"{row} .lb-delete-job")
    page.wait_for_selector(f'#lb-jobs-body tr[data-id="{sid}"]', state="detached")
    shot(page, "40-deleted")

    with Client(info["urls"]["ingest"], info["demo_token"]) as client, pytest.raises(ApiError) as gone:
        client.get(sid)
    assert gone.value.status == 404
    run = MlflowClient(mlflow_admin_url(info)).get_run(record.mlflow_run_id)
    assert run.info.lifecycle_stage == "deleted"
    assert dialogs and sid in dialogs[0], "the confirmation names the submission"
    s3 = make_client(stack.s3)
    for prefix in (keys.submission_prefix(record.user, sid), keys.results_prefix(record.user, sid)):
        assert s3.list_objects_v2(Bucket=stack.s3.bucket, Prefix=prefix).get("KeyCount", 0) == 0, prefix

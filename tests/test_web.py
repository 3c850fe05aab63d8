"""The web page on :8501, in a real browser (Debian's chromium driven by Playwright) against the real local stack.

A submission goes through the page exactly as a user would make it: token, files (several files and a whole
folder), metadata, Submit; the browser PUTs the files straight to the store (a large one as a multipart upload),
the job goes pending -> running -> completed in the job list, its log is followed live, and it shows up on the
leaderboard. The page's own server is shown to receive none of the files' bytes. Screenshots of every screen
are saved under test-artifacts/web/.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.web_fixtures import (
    MAX_FILE_BYTES,
    MIB,
    ROOT,
    WATCH_SCRIPT,
    admin,
    check_store,
    job_status,
    quick_submission,
    row_js,
    shot,
    sign_in,
    throttle,
    traffic,
    user_token,
)
from tools.stack.up import Stack

# ---------------------------------------------------------------- fast checks (no browser, no stack)


def test_importing_the_frontend_starts_nothing() -> None:
    code = "import sys, frontend.app, frontend.__main__; print('gradio' in sys.modules, 'uvicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_the_server_serves_the_page_and_its_scripts_and_refuses_file_uploads() -> None:
    from starlette.testclient import TestClient

    from frontend.app import SCRIPTS, STYLESHEET, create_app
    from frontend.settings import FrontendSettings

    settings = FrontendSettings(
        ingest_public_url="http://api.example:8000/", store_console_url="http://console.example"
    )
    with TestClient(create_app(settings)) as client:
        config = client.get("/config")
        assert config.status_code == 200 and "LeadersBoard" in config.text
        assert "http://api.example:8000" in config.text and "http://console.example" in config.text
        for name in (*SCRIPTS, STYLESHEET):
            assert client.get(f"/lb-static/{name}").status_code == 200, name
        refused = client.post("/gradio_api/upload", files={"files": ("a.bin", b"x" * 1000)})
        assert refused.status_code == 403 and "straight to the store" in refused.text
        traffic = client.get("/frontend/health").json()["traffic"]
        assert traffic["refused_uploads"] == 1 and traffic["request_body_bytes"] == 0


def test_static_files_stay_small() -> None:
    from frontend.app import STATIC_DIR

    for path in STATIC_DIR.iterdir():
        if path.is_dir():  # vendor/: third-party files, served as shipped (vendor/README.md)
            continue
        assert len(path.read_text().splitlines()) <= 400, f"{path.name}: keep each static file under ~400 lines"


# ---------------------------------------------------------------- the browser against the real stack


@pytest.mark.slow
def test_a_bad_token_is_refused_plainly_and_not_remembered(page: Any) -> None:
    page.fill("#lb-token", "lbt_this-is-not-a-token")
    page.click("#lb-token-save")
    status = page.wait_for_selector("#lb-token-status.lb-error")
    text = status.inner_text()
    assert "401" in text and "not accepted" in text, text
    assert page.evaluate("() => window.localStorage.getItem('leadersboard.token')") is None
    assert page.is_disabled("#lb-submit-btn")
    assert "token" in page.inner_text("#lb-submit-why").lower()
    shot(page, "01-token-401")


@pytest.mark.slow
def test_rate_limit_and_size_limit_are_explained(page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path) -> None:
    _, info = web
    token = user_token(info, "ratelimited")
    admin(info, "PUT", "/admin/quotas/users/ratelimited", {"per_hour": 0})
    files = quick_submission(tmp_path / "sub")[:2]
    sign_in(page, token)
    page.set_input_files("#lb-files-input", [str(p) for p in files])
    page.click("#lb-submit-btn")
    error = page.wait_for_selector("#lb-submit-result .lb-error")
    text = error.inner_text()
    assert "Too many submissions (429)" in text and "You can submit again in 1 h" in text, text
    assert "at most 0 submissions per hour" in text, text
    shot(page, "02-rate-limit-429")

    huge = tmp_path / "huge.bin"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)
    page.set_input_files("#lb-files-input", [str(huge)])
    page.click("#lb-submit-btn")
    page.wait_for_function("() => document.querySelector('#lb-submit-result').textContent.includes('413')")
    assert "Too large (413)" in page.inner_text("#lb-submit-result")
    shot(page, "03-too-large-413")


@pytest.mark.slow
def test_a_submission_through_the_page_runs_and_reaches_the_leaderboard(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    stack, info = web
    files = quick_submission(tmp_path / "quick")
    total = sum(p.stat().st_size for p in files)
    requests: list[tuple[float, str, str]] = []
    page.on("request", lambda r: requests.append((time.monotonic(), r.method, r.url)))
    before = traffic(info)

    # The token is remembered in the browser: after a reload the page is signed in without pasting it again.
    sign_in(page, info["demo_token"])
    page.reload()
    page.wait_for_selector("#lb-token-status.lb-ok")
    page.evaluate(WATCH_SCRIPT)

    page.set_input_files("#lb-files-input", [str(p) for p in files])
    assert page.input_value("#lb-entrypoint") == "main.py"
    assert page.input_value("#lb-config") == "config.yaml"
    page.fill("#lb-metadata", '{"method": "quick", "description": "through the page",')
    assert "Not valid JSON" in page.inner_text("#lb-metadata-check")
    assert page.is_disabled("#lb-submit-btn")
    page.fill("#lb-metadata", json.dumps({"method": "quick", "description": "through the page", "dataset": "toy"}))
    assert "valid JSON" in page.inner_text("#lb-metadata-check")
    assert page.is_enabled("#lb-submit-btn")
    shot(page, "10-submit-form")

    # Without a runner the job waits as pending, so that state is seen for sure; uploads are slowed down so that
    # the progress bars are seen moving.
    stack.process("runner").stop()
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", throttle(4 * MIB))
    page.click("#lb-submit-btn")
    page.wait_for_function("() => window.__progress.some(p => p.phase === 'uploading' && p.sent > 2e6)")
    shot(page, "11-uploading")
    result = page.wait_for_selector("#lb-submit-result .lb-ok")
    cdp.send("Network.emulateNetworkConditions", throttle(-1))
    submission_id = result.get_attribute("data-id")
    assert submission_id
    assert "Uploaded" in page.inner_text("#lb-phase-text")
    moving = {p["sent"] for p in page.evaluate("() => window.__progress") if p["phase"] == "uploading"}
    assert len({sent for sent in moving if 0 < sent < total}) >= 5, f"the overall bar did not move: {sorted(moving)}"
    for path in files:
        bar = page.get_attribute(f'.lb-file-progress[data-path="{path.name}"] .lb-bar', "aria-valuenow")
        assert bar == "100", (path.name, bar)
    shot(page, "12-uploaded")

    # Every byte went from the browser to the store; none to the page's server.
    check_store(stack, submission_id, files)
    after = traffic(info)
    assert after["refused_uploads"] == before["refused_uploads"]
    received = after["request_body_bytes"] - before["request_body_bytes"]
    assert received < 64 * 1024, f"the page's server received {received} bytes of request bodies"
    page_origin = info["urls"]["frontend"]
    assert not [(m, u) for _, m, u in requests if m in ("POST", "PUT") and u.startswith(page_origin)]
    store_puts = [u for _, m, u in requests if m == "PUT" and u.startswith(info["urls"]["s3"])]
    assert len(store_puts) >= 3 + 3 + 1, store_puts  # three small files, three parts of big.bin, the manifest

    # pending (no runner yet) -> running -> completed, in the job list, without a reload.
    page.click("#lb-tab-jobs")
    page.wait_for_function(f"() => window.__statuses.includes('pending') && {row_js(submission_id)}")
    assert job_status(page, submission_id) == "pending"
    shot(page, "13-jobs-pending")
    stack.restart("runner")
    page.click(f'#lb-jobs-body tr[data-id="{submission_id}"] .lb-show-logs')
    page.wait_for_function(
        "() => document.querySelector('#lb-log-status')?.textContent.includes('running')"
        " && document.querySelector('#lb-log-text').textContent.includes('epoch 1')",
        timeout=120_000,
    )
    assert job_status(page, submission_id) in ("pending", "running")
    shot(page, "14-logs-running")
    page.wait_for_function(
        "() => document.querySelector('#lb-log-state').textContent.includes('End of the log')", timeout=120_000
    )
    log = page.inner_text("#lb-log-text")
    assert "hello from the zip" in log and "epoch 9" in log and "done" in log, log
    page.wait_for_function(f"() => window.__statuses.includes('completed') && {row_js(submission_id)}", timeout=60_000)
    statuses = page.evaluate("() => window.__statuses")
    assert statuses == ["pending", "running", "completed"], statuses
    assert page.evaluate("() => window.__sameDocument") is True, "the page was reloaded"
    row = page.inner_text(f'#lb-jobs-body tr[data-id="{submission_id}"]')
    assert "✅" in row and "completed" in row and "image_AUROC" in row and "0.8750" in row and "quick" in row, row
    shot(page, "15-jobs-completed")

    # Its files, browsable in MLflow through the access-checking port (others get 403: test_mlflow_access.py).
    href = page.get_attribute(f'#lb-jobs-body tr[data-id="{submission_id}"] a.lb-artifacts', "href")
    assert href and href.startswith(info["urls"]["mlflow"] + "/#/experiments/") and href.endswith("/artifacts"), href
    owner = page.context.browser.new_context(http_credentials={"username": "demo", "password": info["demo_token"]})
    try:
        artifacts = owner.new_page()
        artifacts.goto(href)
        artifacts.wait_for_selector("text=job.log", timeout=90_000)
        shot(artifacts, "15b-artifacts-in-mlflow")
    finally:
        owner.close()

    # The job list is reloaded every 5 seconds.
    polls = [t for t, m, u in requests if m == "GET" and u == f"{info['urls']['api']}/submissions?limit=50"]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert sum(1 for gap in gaps if 4.0 <= gap <= 6.5) >= 3, gaps

    # The leaderboard: ranked by image_AUROC (higher is better), method and description, a link to the MLflow run.
    page.click("#lb-tab-board")
    entry = page.wait_for_selector(f'#lb-board-result tr[data-id="{submission_id}"]')
    text = entry.inner_text()
    assert "quick" in text and "through the page" in text and "0.8750" in text and "demo" in text, text
    assert "image_AUROC ↑" in page.inner_text("#lb-board-result thead")
    assert "higher is better" in page.inner_text("#lb-board-note")
    run_link = entry.query_selector("a.lb-link")
    assert run_link and str(run_link.get_attribute("href")).startswith(info["urls"]["mlflow"] + "/#/experiments/")
    assert page.get_attribute("#lb-board-mlflow", "href") == info["urls"]["mlflow"]
    assert page.query_selector("#lb-board-store") is None  # no store console locally; S3 is not for people
    page.check("#lb-board-all")
    # The row is already on the board shown before the check: wait for the board the check asked for.
    page.wait_for_function(
        "() => (document.querySelector('#lb-board-note')?.textContent || '').includes('every completed run')"
    )
    page.wait_for_selector(f'#lb-board-result tr[data-id="{submission_id}"]')
    page.check("#lb-board-best")
    page.wait_for_selector(f'#lb-board-result tr[data-id="{submission_id}"]')
    shot(page, "16-leaderboard")

    # A narrow window (a phone): one column, no sideways scrolling; then the Japanese labels.
    page.set_viewport_size({"width": 390, "height": 844})
    for number, tab in enumerate(("submit", "jobs", "board"), start=20):
        page.click(f"#lb-tab-{tab}")
        page.wait_for_timeout(300)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, tab
        shot(page, f"{number}-narrow-{tab}")
    page.click("#lb-lang-ja")
    assert page.inner_text("#lb-tab-submit").strip() == "投稿"
    assert "Show logs" in page.inner_text("#lb-jobs-body") or page.is_hidden("#lb-panel-jobs")
    shot(page, "23-narrow-ja-board")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("#lb-tab-submit")
    shot(page, "24-ja-submit")
    page.click("#lb-lang-en")


@pytest.mark.slow
def test_the_padim_example_as_a_folder_then_again_without_resending_the_dataset(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    from examples.padim.make_dataset import make_dataset_zip

    _, info = web
    folder = tmp_path / "padim"
    folder.mkdir()
    for name in ("main.py", "config.yaml"):
        (folder / name).write_bytes((ROOT / "examples" / "padim" / name).read_bytes())
    make_dataset_zip(folder / "pcb1.zip")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".notes").write_text("hidden files stay home\n")
    sign_in(page, info["demo_token"])
    page.evaluate(WATCH_SCRIPT)
    page.set_input_files("#lb-folder-input", str(folder))
    listed = page.inner_text("#lb-file-table")
    assert "pcb1.zip" in listed and "main.py" in listed and "config.yaml" in listed
    assert "__pycache__" not in listed and ".notes" not in listed
    metadata = {"method": "padim", "description": "ResNet18ベースのPADIMモデル"}
    page.fill("#lb-metadata", json.dumps(metadata, ensure_ascii=False))
    page.click("#lb-submit-btn")
    submission_id = page.wait_for_selector("#lb-submit-result .lb-ok").get_attribute("data-id")
    assert "uploaded" in page.inner_text('.lb-file-progress[data-path="pcb1.zip"]')
    page.click("#lb-tab-jobs")
    page.wait_for_function(f"() => window.__statuses.includes('completed') && {row_js(submission_id)}", timeout=300_000)
    row = page.inner_text(f'#lb-jobs-body tr[data-id="{submission_id}"]')
    assert "image_AUROC" in row and "padim" in row and "pcb1" in row, row
    shot(page, "30-padim-completed")
    page.click("#lb-tab-board")
    # The dataset's name comes from the job (here `visa/pcb1`, from the example's metrics.json).
    option = page.wait_for_selector("#lb-board-dataset option[value*='pcb1']", state="attached")
    page.select_option("#lb-board-dataset", str(option.get_attribute("value")))
    entry = page.wait_for_selector(f'#lb-board-result tr[data-id="{submission_id}"]')
    assert "ResNet18ベースのPADIMモデル" in entry.inner_text()
    shot(page, "31-padim-leaderboard")

    # Submitted again unchanged: the dataset is already in the store and is not sent; then cancel the job.
    page.click("#lb-tab-submit")
    page.click("#lb-submit-btn")
    again = page.wait_for_selector(f'#lb-submit-result .lb-ok:not([data-id="{submission_id}"])')
    again_id = again.get_attribute("data-id")
    assert "already in the store" in page.inner_text('.lb-file-progress[data-path="pcb1.zip"]')
    shot(page, "32-padim-dataset-already-stored")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#lb-tab-jobs")
    page.wait_for_selector(f'#lb-jobs-body tr[data-id="{again_id}"]')
    page.click(f'#lb-jobs-body tr[data-id="{again_id}"] .lb-cancel-job')
    page.wait_for_selector(f'#lb-jobs-body tr[data-id="{again_id}"][data-status="cancelled"]')
    assert "🚫" in page.inner_text(f'#lb-jobs-body tr[data-id="{again_id}"]')
    shot(page, "33-cancelled")

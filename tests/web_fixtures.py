"""The real local stack with the web page, and Debian's chromium driven by Playwright, for tests/test_web.py."""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadersboard.s3 import make_client
from tests.stack_fixtures import running_stack
from tools.stack.up import Stack

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
MIB = 1024 * 1024
MULTIPART_BYTES = 5 * MIB
MAX_FILE_BYTES = 40 * MIB

QUICK_MAIN = """
import argparse, json, pathlib, time
parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()
print("config:", pathlib.Path(args.config).read_text().strip(), flush=True)
print("extracted from the zip:", pathlib.Path("extra/hello.txt").read_text().strip(), flush=True)
print("large file:", pathlib.Path("big.bin").stat().st_size, "bytes", flush=True)
for epoch in range(10):
    print(f"epoch {epoch}: loss {1 / (epoch + 1):.3f}", flush=True)
    time.sleep(1)
out = pathlib.Path(args.output)
out.mkdir(parents=True, exist_ok=True)
metrics = {"image_AUROC": 0.875, "image_F1Score": 0.625}
(out / "metrics.json").write_text(json.dumps({"params": {"epochs": 10}, "metrics": metrics}))
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        subprocess.run([str(ROOT / "scripts" / "install-browser.sh")], check=False, timeout=900)
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing and scripts/install-browser.sh could not install it (root + apt)")
    return CHROMIUM


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, chromium: Path) -> Iterator[tuple[Stack, dict[str, Any]]]:
    overrides = {"ingest": {"multipart_threshold_bytes": MULTIPART_BYTES, "multipart_part_bytes": MULTIPART_BYTES,
                            "max_file_bytes": MAX_FILE_BYTES}}  # fmt: skip
    with running_stack(tmp_path_factory.mktemp("web-stack"), with_frontend=True, overrides=overrides) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium: Path, web: tuple[Stack, dict[str, Any]]) -> Iterator[Any]:
    """Started after the stack: Playwright's sync API keeps an event loop running in this thread."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, web: tuple[Stack, dict[str, Any]], request: pytest.FixtureRequest) -> Iterator[Any]:
    failed_before = request.session.testsfailed
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(60_000)
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.goto(web[1]["urls"]["frontend"])
    opened.wait_for_selector("#lb-token")
    yield opened
    if request.session.testsfailed > failed_before:
        shot(opened, f"FAILED-{request.node.name}")
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, token: str) -> None:
    page.fill("#lb-token", token)
    page.click("#lb-token-save")
    page.wait_for_selector("#lb-token-status.lb-ok")


def traffic(info: dict[str, Any]) -> dict[str, int]:
    body = httpx.get(f"{info['urls']['frontend']}/frontend/health", timeout=10).json()
    return dict(body["traffic"])


def admin(info: dict[str, Any], method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {info['admin_token']}"}
    response = httpx.request(method, f"{info['urls']['api']}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code < 300, response.text
    return dict(response.json())


def user_token(info: dict[str, Any], user: str) -> str:
    return str(admin(info, "POST", "/admin/tokens", {"user": user})["token"])


def job_status(page: Any, submission_id: str) -> str | None:
    row = page.query_selector(f'#lb-jobs-body tr[data-id="{submission_id}"]')
    return row.get_attribute("data-status") if row else None


def quick_submission(root: Path) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(textwrap.dedent(QUICK_MAIN))
    (root / "config.yaml").write_text("dataset: toy\nepochs: 10\n")
    with zipfile.ZipFile(root / "data.zip", "w") as archive:
        archive.writestr("extra/hello.txt", "hello from the zip\n")
    (root / "big.bin").write_bytes(os.urandom(12 * MIB))  # > MULTIPART_BYTES: a multipart upload of 3 parts
    return [root / name for name in ("main.py", "config.yaml", "data.zip", "big.bin")]


WATCH_SCRIPT = """() => {
  window.__sameDocument = true;
  window.__progress = [];
  window.__statuses = [];
  LB.on('upload-progress', (p) => window.__progress.push(p));
  LB.on('jobs', (list) => {
    const id = document.querySelector('#lb-submit-result .lb-ok')?.dataset.id;
    const job = (list || []).find((j) => j.submission_id === id);
    if (job && window.__statuses[window.__statuses.length - 1] !== job.status) window.__statuses.push(job.status);
  });
}"""


def row_js(submission_id: str) -> str:
    return f"Boolean(document.querySelector('#lb-jobs-body tr[data-id=\"{submission_id}\"]'))"


def throttle(upload_bytes_per_s: int) -> dict[str, Any]:
    return {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_bytes_per_s}


def check_store(stack: Stack, submission_id: str, files: list[Path]) -> None:
    from leadersboard import keys

    s3 = make_client(stack.s3)
    bucket = stack.s3.bucket
    for path in files:
        if path.suffix == ".zip":
            key = keys.blob_key("demo", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            key = keys.file_key("demo", submission_id, path.name)
        stored = s3.get_object(Bucket=bucket, Key=key)
        assert stored["Body"].read() == path.read_bytes(), key
        if path.name == "big.bin":
            assert stored["ETag"].strip('"').endswith("-3"), f"big.bin was not a multipart upload: {stored['ETag']}"
    assert s3.head_object(Bucket=bucket, Key=keys.manifest_key("demo", submission_id))["ContentLength"] > 0

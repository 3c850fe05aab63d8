"""The page's checksums (issue 16): hash-wasm and the browser's native SHA-256 in a Web Worker, started when the
files are picked, shown as their own step, and remembered so that an unchanged file is neither hashed nor sent
again. Debian's chromium driven by Playwright against the real local stack (tests/web_fixtures.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from leadersboard import keys
from leadersboard.s3 import make_client
from tests.web_fixtures import MIB, WATCH_SCRIPT, row_js, sign_in
from tools.stack.up import Stack

VENDOR = Path(__file__).resolve().parents[1] / "frontend" / "static" / "vendor"
CHUNK_BYTES = 8 * MIB  # lb-hash-worker.js reads and hashes this much at a time
MAIN = """
import argparse, json, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--config", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()
print("weights:", pathlib.Path("weights.bin").stat().st_size, "bytes", flush=True)
out = pathlib.Path(args.output)
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"metrics": {"image_AUROC": 0.5}}))
"""

# ---------------------------------------------------------------- no browser


def test_the_server_serves_the_worker_and_the_vendored_library_as_javascript() -> None:
    from starlette.testclient import TestClient

    from frontend.app import WORKER_SCRIPTS, browser_config, create_app
    from frontend.settings import FrontendSettings

    settings = FrontendSettings()
    config = browser_config(settings)
    with TestClient(create_app(settings)) as client:
        for key, name in WORKER_SCRIPTS.items():
            url = config[key]
            assert url.startswith(f"lb-static/{name}?v="), url
            served = client.get(f"/{url}")
            assert served.status_code == 200, url
            # A worker script must come with a JavaScript type or the browser refuses to run it.
            assert served.headers["content-type"].split(";")[0] in ("application/javascript", "text/javascript")
            assert "content-security-policy" not in served.headers  # nothing to allow workers or wasm in
        assert "content-security-policy" not in client.get("/").headers


def test_the_vendored_library_is_the_recorded_release_with_its_licence() -> None:
    readme = (VENDOR / "README.md").read_text()
    digest = hashlib.sha256((VENDOR / "hash-wasm-sha256.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in readme, "vendor/README.md does not record this file's sha256: update its line"
    assert re.search(r"hash-wasm \d+\.\d+\.\d+", readme)
    assert "MIT License" in (VENDOR / "hash-wasm-LICENSE").read_text()


# ---------------------------------------------------------------- the browser against the real stack

HASH_JS = """async ([engine, selector]) => {
  const out = {};
  for (const file of document.querySelector(selector).files) {
    const job = LB.hashFile(file.name, file, engine);
    out[file.name] = [await job.promise, job.engine];
  }
  return out;
}"""


@pytest.mark.slow
def test_the_hash_worker_equals_hashlib_with_both_engines(page: Any, tmp_path: Path) -> None:
    sizes = {"empty": 0, "one": 1, "few-mb": 5 * MIB + 3, "two-chunks": 2 * CHUNK_BYTES, "odd": 2 * CHUNK_BYTES + 12345}
    paths = []
    for name, size in sizes.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    page.evaluate("""() => {
      const input = Object.assign(document.createElement('input'), {type: 'file', multiple: true, id: 't-hash'});
      document.body.append(input);
    }""")
    page.set_input_files("#t-hash", [str(p) for p in paths])
    assert page.evaluate("() => isSecureContext"), "the stack's page is on 127.0.0.1: the native engine is there"
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    for engine, used in (("wasm", "wasm"), ("auto", "native")):
        got = page.evaluate(HASH_JS, [engine, "#t-hash"])
        assert {name: sha for name, (sha, _) in got.items()} == expected, engine
        assert {e for _, e in got.values()} == {used}, got


def write_submission(root: Path) -> list[Path]:
    import zipfile

    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(MAIN)
    (root / "config.yaml").write_text("epochs: 1\n")
    with zipfile.ZipFile(root / "data.zip", "w") as archive:
        archive.writestr("hello.txt", "hello\n")
    (root / "weights.bin").write_bytes(os.urandom(20 * MIB))  # >= 16 MiB: hashed; > 5 MiB: multipart here
    return [root / name for name in ("main.py", "config.yaml", "data.zip", "weights.bin")]


def submit(page: Any, files: list[Path], store_puts: list[str]) -> tuple[str, list[str]]:
    """Pick the files, Submit, and answer the submission id and the store PUTs it made (`store_puts` follows them)."""
    page.evaluate(WATCH_SCRIPT)
    page.set_input_files("#lb-files-input", [str(p) for p in files])
    page.fill("#lb-metadata", json.dumps({"method": "hashing", "dataset": "toy"}))
    store_puts.clear()
    page.click("#lb-submit-btn")
    result = page.wait_for_selector("#lb-submit-result .lb-ok")
    return str(result.get_attribute("data-id")), list(store_puts)


@pytest.mark.slow
def test_the_hashing_step_is_shown_and_an_unchanged_file_is_neither_hashed_nor_sent_again(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    stack, info = web
    files = write_submission(tmp_path / "hashing")
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    sign_in(page, info["demo_token"])
    puts: list[str] = []
    store = info["urls"]["s3"]

    def follow(request: Any) -> None:
        if request.method == "PUT" and request.url.startswith(store):
            puts.append(request.url)

    page.on("request", follow)
    first, sent = submit(page, files, puts)
    step = page.inner_text("#lb-hash-step")
    assert re.search(r"Checksums: 20 MiB in [\d.]+ s — [\d.]+ (B|KiB|MiB|GiB)/s", step), step
    assert page.get_attribute("#lb-hash-step", "data-finished") == "true"
    assert "uploaded" in page.inner_text('.lb-file-progress[data-path="weights.bin"]')
    assert sum("/blobs/" in url for url in sent) >= 2, sent  # weights.bin's parts and data.zip, at their blob keys
    s3 = make_client(stack.s3)
    for name in ("data.zip", "weights.bin"):
        stored = s3.get_object(Bucket=stack.s3.bucket, Key=keys.blob_key("demo", digests[name]))["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == digests[name], name
    page.click("#lb-tab-jobs")
    page.wait_for_function(f"() => window.__statuses.includes('completed') && {row_js(first)}", timeout=180_000)

    # After a reload (the page forgets its File objects) the same files again: the hashes come from the
    # browser's cache and ingest answers "present": only main.py, config.yaml and the manifest are sent.
    page.reload()
    page.wait_for_selector("#lb-token-status.lb-ok")
    page.click("#lb-tab-submit")
    again, sent = submit(page, files, puts)
    assert again != first
    step = page.inner_text("#lb-hash-step")
    assert "2 unchanged file(s): checksum remembered by this browser." in step, step
    assert "Checksums:" not in step, step
    for name in ("data.zip", "weights.bin"):
        assert "already in the store" in page.inner_text(f'.lb-file-progress[data-path="{name}"]'), name
    assert not [url for url in sent if "/blobs/" in url], sent
    assert len(sent) == 3, sent  # main.py, config.yaml, the manifest


# The bytes a native checksum read are sent, not read from the file again (lb-hash.js, docs/uploads.md).
JOBS_JS = """() => LB.hashJobs().map((job) => [job.path, Boolean(job.finishedAt), job.bytes?.byteLength || 0])"""


def pick_and_wait_for_hashes(page: Any, files: list[Path], hashed: int) -> dict[str, int]:
    """Pick the files on the submit tab, wait for `hashed` checksums, answer the bytes each job keeps."""
    page.set_input_files("#lb-files-input", [str(p) for p in files])
    page.wait_for_function(f"() => LB.hashJobs().filter((job) => job.finishedAt).length === {hashed}")
    return {path: kept for path, _, kept in page.evaluate(JOBS_JS)}


@pytest.mark.slow
def test_a_hashed_file_is_sent_from_the_bytes_its_checksum_read(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    stack, info = web
    files = write_submission(tmp_path / "kept")
    weights = files[-1]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    sign_in(page, info["demo_token"])
    page.evaluate(WATCH_SCRIPT)
    kept = pick_and_wait_for_hashes(page, files, 2)
    assert kept == {"data.zip": (tmp_path / "kept" / "data.zip").stat().st_size, "weights.bin": 20 * MIB}, kept
    # Changed on disk after its checksum: the browser would refuse to read the file again, and reading it
    # would send other bytes than the declared checksum's. The page sends what it hashed.
    weights.write_bytes(os.urandom(20 * MIB))
    page.fill("#lb-metadata", json.dumps({"method": "kept", "dataset": "toy"}))
    page.click("#lb-submit-btn")
    result = page.wait_for_selector("#lb-submit-result .lb-notice")
    assert "lb-ok" in str(result.get_attribute("class")), result.inner_text()
    stored = make_client(stack.s3).get_object(Bucket=stack.s3.bucket, Key=keys.blob_key("demo", digest))["Body"]
    assert hashlib.sha256(stored.read()).hexdigest() == digest
    assert page.evaluate("() => LB.keptHashBytes()") == 0  # let go once the run ended
    assert all(kept == 0 for _, _, kept in page.evaluate(JOBS_JS))


@pytest.mark.slow
def test_the_bytes_kept_for_sending_stay_within_the_configured_memory(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    _, info = web
    assert page.evaluate("() => LB.state.config.upload_memory_bytes") == 1024**3  # the default, from the server
    page.evaluate(f"() => {{ LB.state.config.upload_memory_bytes = {25 * MIB}; }}")
    root = tmp_path / "budget"
    root.mkdir()
    big = [root / "a.bin", root / "b.bin"]
    for path in big:
        path.write_bytes(os.urandom(20 * MIB))
    sign_in(page, info["demo_token"])
    kept = pick_and_wait_for_hashes(page, big, 2)
    assert sorted(kept.values()) == [0, 20 * MIB], kept  # the second one does not fit: it is read again
    assert page.evaluate("() => LB.keptHashBytes()") == 20 * MIB
    held = next(path for path, size in kept.items() if size)
    page.click(f'button[aria-label$=" {held}"]')
    page.wait_for_function("() => LB.keptHashBytes() === 0")  # a removed file lets its bytes go


# The store's refusals, as the CLI words and retries them (leadersboard/upload.py): the file, what happened,
# what to do; a 4xx is never tried again, a 5xx is.
def store_parts(page: Any, store: str, answer: Any) -> list[str]:
    """Routes the store's part PUTs (multipart `partNumber=`) through `answer(route, hit)`; answers the URLs hit."""
    hits: list[str] = []

    def handle(route: Any) -> None:
        hits.append(route.request.url)
        answer(route, len(hits))

    page.route(lambda url: url.startswith(store) and "partNumber=" in url, handle)
    return hits


def submit_for_notice(page: Any, files: list[Path]) -> tuple[str, str]:
    page.set_input_files("#lb-files-input", [str(p) for p in files])
    page.click("#lb-submit-btn")
    notice = page.wait_for_selector("#lb-submit-result .lb-notice")
    return str(notice.get_attribute("class")), notice.inner_text()


@pytest.mark.slow
def test_an_invalid_upload_link_is_refused_once_and_named(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    _, info = web
    files = write_submission(tmp_path / "forged")
    sign_in(page, info["demo_token"])

    def forge(route: Any, hit: int) -> None:  # the store itself refuses the forged signature
        route.continue_(url=route.request.url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))

    hits = store_parts(page, info["urls"]["s3"], forge)
    kind, text = submit_for_notice(page, files)
    assert "lb-error" in kind, text
    assert text.startswith("The store refused weights.bin: its upload link has expired or is not valid"), text
    assert "Submit again: a new submission gets new links." in text, text
    assert len(hits) == len(set(hits)), hits  # a 403 is not tried again


@pytest.mark.slow
def test_a_store_outage_is_retried_and_a_throttle_is_not(
    page: Any, web: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    _, info = web
    sign_in(page, info["demo_token"])
    outage = store_parts(
        page, info["urls"]["s3"], lambda route, hit: route.fulfill(status=503) if hit == 1 else route.continue_()
    )
    kind, text = submit_for_notice(page, write_submission(tmp_path / "outage"))
    assert "lb-ok" in kind, text
    assert len(outage) == len(set(outage)) + 1, outage  # the 503's part went again, once

    page.unroute_all()
    page.reload()
    page.wait_for_selector("#lb-token-status.lb-ok")
    slow_down = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    throttled = store_parts(page, info["urls"]["s3"], lambda route, hit: route.fulfill(status=429, body=slow_down))
    kind, text = submit_for_notice(page, write_submission(tmp_path / "throttled"))
    assert "lb-error" in kind, text
    assert text.startswith("The store refused weights.bin (429 SlowDown: Please reduce your request rate.)"), text
    assert len(throttled) == len(set(throttled)), throttled  # a 4xx is never tried again

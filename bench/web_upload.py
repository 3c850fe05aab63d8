"""The web page against the CLI: the same 1 GiB submission through Chromium and through `leadersboard submit`.

    .venv/bin/python bench/web_upload.py --size-mib 1024 --rounds 3

Starts the local stack (`leadersboard up`'s processes, the page included, no runner: nothing competes with
the uploads) on free ports in a temporary directory under /tmp, writes main.py, config.yaml and a random
dataset of --size-mib MiB there, and deletes everything at the end. Debian's /usr/bin/chromium is driven over
the DevTools protocol by bench/cdp.py, not by Playwright: Playwright's network tracking copies every body the
page sends from memory into the protocol, which a user's browser does not (bench/cdp.py says more).

- cold, alternating page and CLI, --rounds times each: the dataset's blob is deleted before every submission
  and neither side has its hash yet (a new browser context: empty localStorage; an empty
  $XDG_CACHE_HOME for the CLI), so each one hashes and uploads the whole file. The page's time runs from
  picking the files (it starts hashing then) to its "Submitted" notice; the CLI's is the whole
  `leadersboard submit DIR --json` subprocess, interpreter start included.
- resubmit, alternating: the unchanged submission again with the hash remembered (the page reloaded, the same
  browser profile; the CLI's warm cache): ingest answers `present` and no byte of the dataset is sent.
- the page's two hash engines on the dataset alone (the worker's native SHA-256 and hash-wasm), for reference.

Ratio = page / CLI (total times); the target is at most 1.2.

--split-cores runs the stack on CPU 1 and the clients (Chromium, the CLI, this script) on CPU 0, as when the
browser runs on the user's machine and the store on a server: by default all of them share the machine's
cores, and a client that spends more CPU per byte (Chromium: about 4.5 CPU-seconds per GiB sent, the CLI
about 1.2) takes that CPU from the store.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cdp import Browser
from bench.cdp import Page as Tab
from bench.cpu import cpu_by_name, spent
from bench.stack import local_stack
from leadersboard import keys
from leadersboard.s3 import make_client
from tools.stack.up import DEMO_USER, Stack

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--window-size=1280,800",
]
MAIN = "print('bench')\n"
PHASES_JS = """() => {
  window.__phases = {};
  LB.on('upload-progress', (p) => {
    if (!(p.phase in window.__phases)) window.__phases[p.phase] = performance.now();
    const first = p.phase === 'uploading' && !('kept_mib' in window.__phases);
    if (first) window.__phases.kept_mib = LB.keptHashBytes() / 2 ** 20;
  });
}"""
ENGINE_JS = """async (engine) => {
  const file = document.querySelector('#bench-file').files[0];
  const started = performance.now();
  const job = LB.hashFile('dataset.bin', file, engine);
  const sha = await job.promise;
  return [sha, job.engine, (performance.now() - started) / 1000];
}"""


def line(label: str, page_s: float, cli_s: float, detail: str) -> None:
    load = f"load average {os.getloadavg()[0]:.1f}"
    print(f"{label}: page {page_s:.2f} s, CLI {cli_s:.2f} s, ratio {page_s / cli_s:.2f}; {load}; {detail}", flush=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(16 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // (16 * MiB)):
            handle.write(os.urandom(16 * MiB))
        handle.write(os.urandom(size % (16 * MiB)))


def present(selector: str) -> str:
    return f"() => document.querySelector({json.dumps(selector)}) !== null"


def text(tab: Tab, selector: str) -> str:
    return str(tab.evaluate(f"() => document.querySelector({json.dumps(selector)})?.innerText || ''"))


class Page:
    """One browser context (its own localStorage) on the stack's page, signed in as the demo user."""

    def __init__(self, browser: Browser, info: dict[str, Any]) -> None:
        self.info = info
        self.page = browser.new_page()
        self.open()
        self.page.fill("#lb-token", info["demo_token"])
        self.page.click("#lb-token-save")
        self.page.wait_for(present("#lb-token-status.lb-ok"))

    def open(self) -> None:
        self.page.goto(self.info["urls"]["frontend"], ready=present("#lb-token"))

    def submit(self, files: list[Path]) -> tuple[float, str, dict[str, float]]:
        """Seconds from picking the files to the "Submitted" notice, the hashing step's text, phase times."""
        page = self.page
        page.evaluate(PHASES_JS)
        started = time.perf_counter()
        page.set_input_files("#lb-files-input", files)
        page.wait_for("() => !document.querySelector('#lb-submit-btn').disabled")
        clicked = page.evaluate("() => performance.now()")
        page.click("#lb-submit-btn")
        page.wait_for(present("#lb-submit-result .lb-ok"))
        seconds = time.perf_counter() - started
        phases = page.evaluate("() => window.__phases")
        step = text(page, "#lb-hash-step")
        kept = {"sent from memory (MiB)": phases.pop("kept_mib", 0)}
        return seconds, step, {**{k: round((v - clicked) / 1000, 2) for k, v in phases.items()}, **kept}

    def close(self) -> None:
        self.page.close()


def cli(submission: Path, info: dict[str, Any], home: Path) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "config"),
           "LEADERSBOARD_URL": info["urls"]["ingest"], "LEADERSBOARD_TOKEN": info["demo_token"]}  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "leadersboard"), "submit", str(submission), "--json"],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"leadersboard submit failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def cpu_of_children_since(before: resource.struct_rusage) -> float:
    """CPU seconds of the child processes this one waited for since `before` (the CLI's subprocess)."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)


def engines(browser: Browser, info: dict[str, Any], dataset: Path) -> None:
    page = Page(browser, info)
    page.page.evaluate("""() => document.body.append(Object.assign(document.createElement('input'),
      {type: 'file', id: 'bench-file'}))""")
    page.page.set_input_files("#bench-file", [dataset])
    size_mib = dataset.stat().st_size / MiB
    for engine in ("auto", "wasm"):
        _, used, seconds = page.page.evaluate(ENGINE_JS, engine)
        print(f"hash engine {used}: {seconds:.2f} s ({size_mib / seconds:.0f} MiB/s)", flush=True)
    page.close()


def run(stack: Stack, info: dict[str, Any], root: Path, args: argparse.Namespace) -> None:
    submission = root / "submission"
    submission.mkdir()
    (submission / "main.py").write_text(MAIN)
    (submission / "config.yaml").write_text("dataset: bench\n")
    dataset = submission / "dataset.bin"
    started = time.perf_counter()
    write_random(dataset, args.size_mib * MiB)
    print(f"wrote {args.size_mib} MiB of random data in {time.perf_counter() - started:.1f} s", flush=True)
    files = sorted(submission.iterdir())
    s3 = make_client(stack.s3)
    blob = keys.blob_key(DEMO_USER, sha256_file(dataset))
    page_s: list[float] = []
    cli_s: list[float] = []
    with Browser(CHROMIUM, CHROMIUM_ARGS, root / "chromium") as browser:
        for number in range(1, args.rounds + 1):
            page = Page(browser, info)
            before = cpu_by_name()
            seconds, step, phases = page.submit(files)
            page_cpu = spent(before, cpu_by_name())
            page.close()
            page_s.append(seconds)
            s3.delete_object(Bucket=stack.s3.bucket, Key=blob)
            home = root / f"cli-{number}"
            before, children = cpu_by_name(), resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, result = cli(submission, info, home)
            cli_cpu = {**spent(before, cpu_by_name()), "leadersboard": cpu_of_children_since(children)}
            cli_s.append(seconds)
            assert result["present"] == [] and "dataset.bin" in result["multipart"], result
            s3.delete_object(Bucket=stack.s3.bucket, Key=blob)
            detail = f"page: {step}; phases after Submit {phases}; CPU-s: page {page_cpu}, CLI {cli_cpu}"
            line(f"cold round {number}", page_s[-1], cli_s[-1], detail)
        print(f"cold: page median {statistics.median(page_s):.2f} s, CLI median {statistics.median(cli_s):.2f} s, "
              f"ratio of totals {sum(page_s) / sum(cli_s):.2f}", flush=True)  # fmt: skip
        resubmit(browser, info, files, submission, root / f"cli-{args.rounds}", args.rounds)
        engines(browser, info, dataset)


def resubmit(
    browser: Browser, info: dict[str, Any], files: list[Path], submission: Path, home: Path, rounds: int
) -> None:
    page = Page(browser, info)
    page.submit(files)  # uploads the blob again (deleted above) and remembers the hash in this profile
    page_s: list[float] = []
    cli_s: list[float] = []
    for number in range(1, rounds + 1):
        page.open()
        seconds, step, phases = page.submit(files)
        page_s.append(seconds)
        sent = text(page.page, '.lb-file-progress[data-path="dataset.bin"]')
        assert "already in the store" in sent, sent
        seconds, result = cli(submission, info, home)
        cli_s.append(seconds)
        assert result["present"] == ["dataset.bin"] and result["sent_bytes"] < MiB, result
        detail = f"page: {step}; phases after Submit {phases}; CLI sent {result['sent_bytes']} bytes"
        line(f"resubmit {number}", page_s[-1], cli_s[-1], detail)
    print(f"resubmit: page median {statistics.median(page_s):.2f} s, CLI median {statistics.median(cli_s):.2f} s, "
          f"ratio of totals {sum(page_s) / sum(cli_s):.2f}", flush=True)  # fmt: skip
    page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--split-cores", action="store_true", help="the stack on CPU 1, the clients on CPU 0")
    args = parser.parse_args()
    if args.split_cores:
        os.sched_setaffinity(0, {1})  # the stack's processes inherit it
    with local_stack("lb-web-upload-bench-", with_frontend=True, runners=0) as (root, stack, info):
        if args.split_cores:
            os.sched_setaffinity(0, {0})  # Chromium and the CLI inherit this one
        run(stack, info, root, args)


if __name__ == "__main__":
    main()

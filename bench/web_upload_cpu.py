"""Where an upload's CPU goes: the same 1 GiB multipart upload from Chromium and from Python, with the CPU
seconds each process (and each Chromium thread) spent on it.

    .venv/bin/python bench/web_upload_cpu.py --size-mib 1024 --rounds 2
    .venv/bin/python bench/web_upload_cpu.py --variants xhr:4,xhr:6,fetch:4,memory:4 --weed-limit 1GiB

Starts the local stack with the page (no runner) on free ports under /tmp, declares a submission holding one
random file (no sha256: its parts go to the submission's own key), and uploads only that file's parts, without
the manifest, so no job starts: from the page with `XMLHttpRequest` or `fetch` and `File.slice` bodies, or
(`memory`) XHR with views of the file's bytes read into an `ArrayBuffer` before the clock starts (the page's way
for a file its native checksum read), N parts in flight, without the page's progress display; and with httpx
from 8 threads (the CLI's way). Chromium is driven by bench/cdp.py, as a user's browser runs (no DevTools
network tracking).
Each variant gets a fresh submission. Prints the seconds, MiB/s, and the CPU seconds the bench's process tree
spent: by command (weed, the stack's python services), Chromium's by thread name, and this
process as "bench".
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cdp import Browser
from bench.cpu import cpu_by_name, spent
from bench.stack import local_stack
from bench.web_upload import CHROMIUM, CHROMIUM_ARGS, write_random
from tools.stack import services

MiB = 1024 * 1024
PARTS_JS = """async ([how, inFlight, item]) => {
  const file = document.querySelector('#bench-file').files[0];
  let active = 0;
  const waiting = [];
  const gate = async (fn) => {
    if (active >= inFlight) await new Promise((resolve) => waiting.push(resolve));
    active += 1;
    try { return await fn(); } finally { active -= 1; const next = waiting.shift(); if (next) next(); }
  };
  const put = (url, body) => how === 'fetch'
    ? fetch(url, {method: 'PUT', body}).then((r) => r.ok && r.headers.get('ETag'))
    : new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open('PUT', url);
        xhr.upload.onprogress = () => {};
        xhr.onload = () => resolve(xhr.status < 300 && xhr.getResponseHeader('ETag'));
        xhr.onerror = reject;
        xhr.send(body);
      });
  const bytes = how === 'memory' ? await file.arrayBuffer() : null;
  const started = performance.now();
  const etags = await Promise.all(item.parts.map((part) => gate(() => {
    const start = (part.part_number - 1) * item.part_size;
    return put(part.url, bytes ? new Uint8Array(bytes, start, part.size) : file.slice(start, start + part.size));
  })));
  return [(performance.now() - started) / 1000, etags.filter(Boolean).length];
}"""


def report(label: str, seconds: float, size_mib: int, before: dict[str, float], after: dict[str, float]) -> None:
    chromium = spent(before, after).get("chromium", 0.0)
    top = dict(sorted(spent(before, after, by_thread=True).items(), key=lambda kv: -kv[1])[:8])
    print(f"{label}: {seconds:.2f} s, {size_mib / seconds:.0f} MiB/s; Chromium {chromium:.1f} CPU-s; {top}", flush=True)


class Submissions:
    """Declares a submission holding the file and answers its multipart item."""

    def __init__(self, info: dict[str, Any], data: Path) -> None:
        self.http = httpx.Client(base_url=info["urls"]["api"], timeout=60.0)
        self.http.headers["Authorization"] = f"Bearer {info['demo_token']}"
        self.data = data

    def item(self) -> dict[str, Any]:
        files = [{"path": "main.py", "size": 1}, {"path": "config.yaml", "size": 1}]
        files.append({"path": "dataset.bin", "size": self.data.stat().st_size})
        body = {"entrypoint": "main.py", "config": "config.yaml", "files": files}
        response = self.http.post("/submissions", json=body)
        response.raise_for_status()
        item: dict[str, Any] = next(u for u in response.json()["uploads"] if u["path"] == "dataset.bin")
        return item


def python_parts(item: dict[str, Any], data: Path, workers: int) -> int:
    def part(spec: dict[str, Any]) -> bool:
        with data.open("rb") as handle:
            handle.seek((spec["part_number"] - 1) * item["part_size"])
            body = handle.read(spec["size"])
        return client.put(spec["url"], content=body).is_success

    with httpx.Client(timeout=120.0) as client, ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(part, item["parts"]))


def run(info: dict[str, Any], data: Path, args: argparse.Namespace) -> None:
    submissions = Submissions(info, data)
    variants = [(how, int(n)) for how, n in (v.split(":") for v in args.variants.split(","))]
    with Browser(CHROMIUM, CHROMIUM_ARGS, data.parent / "chromium") as browser:
        page = browser.new_page()
        page.goto(info["urls"]["frontend"])
        page.evaluate("""() => document.body.append(Object.assign(document.createElement('input'),
          {type: 'file', id: 'bench-file'}))""")
        page.set_input_files("#bench-file", [data])
        for number in range(1, args.rounds + 1):
            for how, in_flight in variants:
                item, before = submissions.item(), cpu_by_name()
                seconds, sent = page.evaluate(PARTS_JS, [how, in_flight, item])
                assert sent == len(item["parts"]), (sent, len(item["parts"]))
                label = f"round {number} page {how}, {in_flight} in flight"
                report(label, seconds, args.size_mib, before, cpu_by_name())
            item, before = submissions.item(), cpu_by_name()
            started = time.perf_counter()
            assert python_parts(item, data, 8) == len(item["parts"])
            report(f"round {number} python httpx, 8 in flight", time.perf_counter() - started, args.size_mib,
                   before, cpu_by_name())  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="xhr:4,memory:4", help="HOW:IN_FLIGHT,... (HOW: xhr, fetch or memory)")
    parser.add_argument("--weed-limit", default=services.SEAWEED_MEMORY_LIMIT, help="weed's GOMEMLIMIT")
    args = parser.parse_args()
    stack_args = {"with_frontend": True, "runners": 0, "weed_limit": args.weed_limit}
    with local_stack("lb-web-upload-cpu-", **stack_args) as (root, _, info):
        data = root / "dataset.bin"
        write_random(data, args.size_mib * MiB)
        run(info, data, args)


if __name__ == "__main__":
    main()

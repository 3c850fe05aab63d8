"""A small Chrome DevTools Protocol client for the upload benches: Chromium as a user has it, without Playwright.

Playwright turns on DevTools' network tracking in every page it opens, and with it Chromium copies each request
body held in memory (an `ArrayBuffer`) into the protocol: the page's uploads from memory ran about ten times
slower under Playwright than in a plain browser (bench/README.md, "Uploads from the web page"). The benches that
time uploads therefore drive Chromium with this client, which enables no domain at all: it only evaluates
JavaScript (`Runtime.evaluate`), navigates, and picks files (`DOM.setFileInputFiles`). The tests keep
Playwright (tests/web_fixtures.py).

    with Browser(CHROMIUM, CHROMIUM_ARGS, profile_dir) as browser:
        page = browser.new_page()          # a fresh browser context: its own localStorage
        page.goto(url)
        page.set_input_files("#input", [path])
        page.wait_for("() => document.querySelector('.done') !== null")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["Browser", "CdpError", "Page"]

START_TIMEOUT_S = 30.0
POLL_S = 0.02


class CdpError(RuntimeError):
    """A command the browser refused, or a script that threw."""


class _Session:
    """One DevTools websocket (the browser's, or a page's): commands in order, answers by id."""

    def __init__(self, loop: asyncio.AbstractEventLoop, http: aiohttp.ClientSession, url: str) -> None:
        self.loop = loop
        self.ws = loop.run_until_complete(http.ws_connect(url, max_msg_size=0))
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.loop.run_until_complete(self._call(method, params))

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        sent = next(self.ids)
        await self.ws.send_json({"id": sent, "method": method, "params": params})
        async for message in self.ws:
            answer = json.loads(message.data)
            if answer.get("id") != sent:
                continue  # an event: none is enabled, but the browser may still send some
            if "error" in answer:
                raise CdpError(f"{method}: {answer['error']}")
            result: dict[str, Any] = answer["result"]
            return result
        raise CdpError(f"{method}: the browser closed the connection")

    def close(self) -> None:
        self.loop.run_until_complete(self.ws.close())


class Page:
    """A page in its own browser context, with the few actions the benches need."""

    def __init__(self, browser: Browser, context_id: str, target_id: str) -> None:
        self.browser, self.context_id, self.target_id = browser, context_id, target_id
        self.session = browser.session(f"/devtools/page/{target_id}")

    def evaluate(self, function: str, arg: Any = None) -> Any:
        """What a function (`() => ...`, `async (arg) => ...`) answers when called with `arg`, awaited."""
        expression = f"({function})({json.dumps(arg)})"
        answer = self.session.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text"))
        return answer["result"].get("value")

    def wait_for(self, condition: str, timeout_s: float = 600.0) -> None:
        """Polls a function of no argument until it answers something true."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.evaluate(condition):
                    return
            except CdpError:  # the page is between two documents (navigation, reload)
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout_s:.0f} s: {condition}")
            time.sleep(POLL_S)

    def goto(self, url: str, ready: str = "() => document.readyState === 'complete'") -> None:
        """Loads `url` (again, if the page is there already) and waits for the new document's `ready`."""
        self.evaluate("() => { window.__cdpLeaving = true; }")
        self.session.call("Page.navigate", url=url)
        self.wait_for(f"() => !window.__cdpLeaving && ({ready})()", 60.0)

    def set_input_files(self, selector: str, paths: list[Path]) -> None:
        """Picks files as a user would: the input's `change` event fires."""
        found = self.session.call("Runtime.evaluate", expression=f"document.querySelector({json.dumps(selector)})")
        object_id = found["result"].get("objectId")
        if object_id is None:
            raise CdpError(f"no element {selector}")
        self.session.call("DOM.setFileInputFiles", files=[str(p) for p in paths], objectId=object_id)

    def click(self, selector: str) -> None:
        self.evaluate(f"() => document.querySelector({json.dumps(selector)}).click()")

    def fill(self, selector: str, value: str) -> None:
        self.evaluate(
            """([selector, value]) => {
              const input = document.querySelector(selector);
              input.value = value;
              input.dispatchEvent(new Event('input', {bubbles: true}));
              input.dispatchEvent(new Event('change', {bubbles: true}));
            }""",
            [selector, value],
        )

    def close(self) -> None:
        self.session.close()
        self.browser.root.call("Target.disposeBrowserContext", browserContextId=self.context_id)


class Browser:
    """Chromium started headless with a DevTools port of its own choosing (no fixed port to collide on)."""

    def __init__(self, executable: str, args: list[str], profile_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        profile_dir.mkdir(parents=True, exist_ok=True)
        command = [executable, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile_dir}"]
        self.process = subprocess.Popen([*command, *args, "about:blank"], stderr=subprocess.DEVNULL)
        self.port, browser_path = self._devtools_address(profile_dir / "DevToolsActivePort")
        self.http = self.loop.run_until_complete(self._http())
        self.root = self.session(browser_path)

    @staticmethod
    async def _http() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def _devtools_address(self, port_file: Path) -> tuple[int, str]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:
                return int(lines[0]), lines[1]
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with {self.process.returncode}")
            time.sleep(0.05)
        raise CdpError(f"chromium wrote no {port_file.name} within {START_TIMEOUT_S:.0f} s")

    def session(self, path: str) -> _Session:
        return _Session(self.loop, self.http, f"ws://127.0.0.1:{self.port}{path}")

    def new_page(self) -> Page:
        context_id = self.root.call("Target.createBrowserContext")["browserContextId"]
        target = self.root.call("Target.createTarget", url="about:blank", browserContextId=context_id)
        return Page(self, context_id, target["targetId"])

    def close(self) -> None:
        try:
            self.root.close()
            self.loop.run_until_complete(self.http.close())
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.loop.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

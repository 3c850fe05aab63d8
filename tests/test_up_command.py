"""`leadersboard up` (what `make up` runs) as a user runs it: URLs and tokens printed, Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tools.stack.procs import tcp_ready
from tools.stack.settings import StackSettings
from tools.stack.up import StackPorts


@pytest.mark.slow
def test_up_prints_urls_and_tokens_serves_the_page_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = StackPorts.free()
    settings = StackSettings(data_dir=tmp_path / "lb", **{f"{k}_port": v for k, v in vars(ports).items()})
    env = {**os.environ, **{f"LB_STACK_{k.upper()}": str(v) for k, v in settings.model_dump().items()}}
    cli = str(Path(sys.executable).parent / "leadersboard")
    up = subprocess.Popen([cli, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stack_json = settings.data_dir / "stack.json"
    try:
        deadline = time.monotonic() + 240
        while not stack_json.exists() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert stack_json.exists(), up.stdout.read() if up.poll() is not None and up.stdout else "no stack.json"
        info = json.loads(stack_json.read_text())
        assert set(info["urls"]) >= {"frontend", "api", "mlflow", "s3", "nats"}
        assert info["admin_token"] and info["demo_token"]
        assert httpx.get(f"{info['urls']['api']}/health").json()["status"] == "ok"
        page = httpx.get(f"{info['urls']['frontend']}/config", timeout=10)
        assert page.status_code == 200 and "LeadersBoard" in page.text
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=120)
    assert up.returncode == 0, output
    assert info["demo_token"] in output and info["urls"]["mlflow"] in output
    for port in vars(ports).values():
        assert not tcp_ready("127.0.0.1", port)(), f"port {port} still open after Ctrl-C"

"""The `leadersboard` command as users run it (a subprocess of .venv/bin/leadersboard) against a whole stack."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.stack_fixtures import write_submission
from tools.stack.up import Stack

pytestmark = pytest.mark.timeout(300)

CLI = str(Path(sys.executable).parent / "leadersboard")

WRITE_METRICS = """
(out / "metrics.json").write_text(json.dumps({"params": {"dataset": "cli-toy"},
                                              "metrics": {"image_AUROC": 0.625, "image_F1Score": 0.5}}))
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh XDG config and cache home: no saved login, no hash cache."""
    (tmp_path / "xdg").mkdir()
    return tmp_path / "xdg"


def run(*args: str, info: dict[str, Any] | None, home: Path, token: str | None = "demo_token",
        timeout: float = 180, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")} | (extra_env or {})
    env |= {"XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache"), "COLUMNS": "200"}
    if info is not None:
        env["LEADERSBOARD_URL"] = info["urls"]["ingest"]
        if token is not None:
            env["LEADERSBOARD_TOKEN"] = info.get(token, token)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(done).stdout)


def test_submit_wait_prints_metrics_and_the_job_commands_answer_json(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path, home: Path
) -> None:
    _, info = stack
    root = write_submission(tmp_path / "good", WRITE_METRICS)
    done = ok(run("submit", str(root), "--metadata", '{"method": "toy-cli"}', "--wait", info=info, home=home))
    assert "config says dataset: toy" in done.stdout  # the job's log, streamed
    assert "image_AUROC" in done.stdout and "0.625" in done.stdout
    sid = done.stderr.split("submitted ", 1)[1].split(":", 1)[0].strip()

    listed = as_json(run("jobs", "--json", info=info, home=home))
    assert sid in [job["submission_id"] for job in listed]
    shown = as_json(run("show", sid, "--json", info=info, home=home))
    assert shown["status"] == "completed" and shown["metrics"]["image_AUROC"] == 0.625
    assert shown["metadata"] == {"method": "toy-cli"}
    logs = as_json(run("logs", sid, "--json", info=info, home=home))
    assert logs["status"] == "completed" and "config says dataset: toy" in logs["text"]
    assert logs["next_offset"] == len(logs["text"].encode())
    for _ in range(60):  # the board's view follows the record a moment later (tests/board_fixtures.py)
        everything = as_json(run("leaderboard", "--all", "--json", info=info, home=home))
        if sid in [entry["submission_id"] for entry in everything["entries"]]:
            break
        time.sleep(0.5)
    board = as_json(run("leaderboard", "--dataset", "cli-toy", "--json", info=info, home=home))
    assert board["kind"] == "self_reported" and board["label"] == "self-reported"
    assert board["entries"][0]["submission_id"] == sid and board["entries"][0]["method"] == "toy-cli"
    table = ok(run("leaderboard", "--dataset", "cli-toy", info=info, home=home)).stdout
    assert sid in table and "0.6250" in table
    assert sid in ok(run("jobs", info=info, home=home)).stdout
    assert "completed" in ok(run("show", sid, info=info, home=home)).stdout


def test_a_failing_submission_exits_1_with_the_reason(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path, home: Path
) -> None:
    _, info = stack
    root = write_submission(tmp_path / "crash", 'print("about to fail"); raise SystemExit(3)')
    done = run("submit", str(root), "--wait", info=info, home=home)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed" in done.stderr and "exit code 3" in done.stderr and "about to fail" in done.stderr


def test_cancel_a_running_job(stack: tuple[Stack, dict[str, Any]], tmp_path: Path, home: Path) -> None:
    _, info = stack
    root = write_submission(tmp_path / "slow", "import time; time.sleep(120)")
    sid = ok(run("submit", str(root), info=info, home=home)).stdout.strip()
    deadline = time.monotonic() + 60
    while run("show", sid, "--json", info=info, home=home).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)  # the job appears once the dispatcher has seen the manifest
    cancelled = as_json(run("cancel", sid, "--json", info=info, home=home))
    assert cancelled["status"] == "cancelled"
    again = run("cancel", sid, info=info, home=home)
    assert again.returncode == 2 and "409" in again.stderr and "already cancelled" in again.stderr


def test_resubmitting_a_dataset_sends_no_bytes_of_it(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path, home: Path
) -> None:
    _, info = stack
    root = write_submission(tmp_path / "data", WRITE_METRICS)
    with zipfile.ZipFile(root / "pcb1.zip", "w") as archive:
        archive.writestr("pcb1/readme.txt", "a tiny dataset")
    first = as_json(run("submit", str(root), "--json", info=info, home=home))
    assert "pcb1.zip" in first["uploaded"] and first["present"] == []
    second = as_json(run("submit", str(root), "--json", "--wait", info=info, home=home))
    assert second["present"] == ["pcb1.zip"] and "pcb1.zip" not in second["uploaded"]
    assert second["sent_bytes"] == (root / "main.py").stat().st_size + (root / "config.yaml").stat().st_size
    assert second["job"]["status"] == "completed"


def test_login_saves_a_private_config_that_later_commands_use(stack: tuple[Stack, dict[str, Any]], home: Path) -> None:
    _, info = stack
    url = info["urls"]["ingest"]
    refused = run("--url", url, "login", "--token", "lbt_not-a-token", info=None, home=home)
    assert refused.returncode == 1 and "refused the token" in refused.stderr
    config = home / "config" / "leadersboard" / "config.json"
    assert not config.exists()

    done = ok(run("login", "--url", url, "--token", info["demo_token"], info=None, home=home))
    assert "as demo" in done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": url, "token": info["demo_token"]}
    assert isinstance(as_json(run("jobs", "--json", info=None, home=home)), list)  # no --token, no environment
    ok(run("logout", info=None, home=home))
    assert not config.exists()
    assert run("jobs", info=None, home=home).returncode != 0


def test_admin_tokens_and_quotas(stack: tuple[Stack, dict[str, Any]], home: Path) -> None:
    _, info = stack

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return run("admin", *args, info=info, home=home, token="admin_token")

    created = as_json(admin("token", "create", "--user", "carol", "--expires-in-s", "3600", "--json"))
    token = created["token"]
    assert created["user"] == "carol" and created["expires_at"]
    plain = ok(admin("token", "create", "--user", "dave"))
    assert plain.stdout.strip().startswith("lbt_")  # only the token on stdout
    listed = as_json(admin("token", "list", "--json"))
    mine = next(t for t in listed if t["token_id"] == created["token_id"])
    assert "token" not in mine and mine["user"] == "carol" and mine["expires_at"]
    table = ok(admin("token", "list")).stdout
    assert created["token_id"] in table and "last used" in table and token not in table
    assert run("jobs", "--json", info=info, home=home, token=token).returncode == 0
    ok(admin("token", "revoke", created["token_id"]))
    refused = run("jobs", "--json", info=info, home=home, token=token)
    assert refused.returncode == 2 and "401" in refused.stderr

    ok(admin("quota", "set", "--user", "carol", "--per-hour", "7", "--concurrent", "3"))
    ok(admin("quota", "set", "--user", "carol", "--per-hour", "8"))  # concurrent stays 3
    ok(admin("quota", "set", "--user", "carol", "--timeout-s", "600"))
    carol = as_json(admin("quota", "show", "--user", "carol", "--json"))
    assert carol["effective"] == {
        "per_hour": 8,
        "concurrent": 3,
        "job_timeout_s": 600,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }
    assert "600 s" in ok(admin("quota", "show", "--user", "carol")).stdout
    before = as_json(admin("quota", "show", "--json"))["default"]
    ok(admin("quota", "set", "--default", "--per-hour", str(before["per_hour"] + 1)))
    overview = as_json(admin("quota", "show", "--json"))
    assert overview["default"] == {**before, "per_hour": before["per_hour"] + 1}
    assert overview["users"]["carol"] == {
        "per_hour": 8,
        "concurrent": 3,
        "job_timeout_s": 600,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }
    assert "carol" in ok(admin("quota", "show")).stdout
    ok(admin("quota", "reset", "--user", "carol"))
    assert as_json(admin("quota", "show", "--user", "carol", "--json"))["override"] == {
        "per_hour": None,
        "concurrent": None,
        "job_timeout_s": None,
        "job_disk_gib": None,
        "job_memory_gib": None,
    }
    ok(admin("quota", "set", "--default", "--per-hour", str(before["per_hour"])))

    everyone = as_json(admin("jobs", "--json"))
    assert all("user" in job for job in everyone)
    own = run("admin", "jobs", "--json", info=info, home=home)  # a user's token: the API shows only their own
    assert own.returncode == 0 and all(job["user"] == "demo" for job in json.loads(own.stdout))
    forbidden = run("admin", "token", "list", info=info, home=home)
    assert forbidden.returncode == 2 and "403" in forbidden.stderr


def test_check_runs_a_submission_locally_like_the_runner(tmp_path: Path, home: Path) -> None:
    good = write_submission(tmp_path / "good", 'assert pathlib.Path("pcb1/readme.txt").is_file()\n' + WRITE_METRICS)
    with zipfile.ZipFile(good / "pcb1.zip", "w") as archive:
        archive.writestr("pcb1/readme.txt", "extracted like on the runner")
    done = ok(run("check", str(good), info=None, home=home))
    assert "check passed" in done.stdout and "image_AUROC" in done.stdout and "0.625" in done.stdout
    assert "config says dataset: toy" in done.stdout

    for body, reason in (
        ("pass", "wrote no metrics.json"),
        ('(out / "metrics.json").write_text(\'{"metrics": {"auroc": "high"}}\')', "not a number"),
        ("raise SystemExit(4)", "exit code 4"),
    ):
        bad = write_submission(tmp_path / f"bad{len(reason)}", body)
        failed = run("check", str(bad), info=None, home=home)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "check failed" in failed.stderr and reason in failed.stderr
    plain = ok(run("check", str(good), info=None, home=home, extra_env={"LB_RUNNER_BWRAP_PATH": "/nonexistent"}))
    assert "not sandboxed" in plain.stderr and "check passed" in plain.stdout
    missing = run("check", str(good), "--entrypoint", "train.py", info=None, home=home)
    assert missing.returncode == 1 and "the entrypoint 'train.py' is not among the files" in missing.stderr

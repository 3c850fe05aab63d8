"""Supervision of the stack's services (tools/stack/supervise.py) and `leadersboard status`, on real child
processes: small Python programs that serve, crash once, or crash every time. The whole stack under
`leadersboard up` is tests/test_up_supervision.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadersboard.models.stack_status import ServiceState, StackStatus
from tools.cli import main
from tools.stack.health import NoStackError, read_status
from tools.stack.procs import ManagedProcess, tcp_ready
from tools.stack.supervise import RestartPolicy, Supervisor, status_file

FAST = RestartPolicy(first_backoff_s=0.05, max_backoff_s=0.2, stable_after_s=60, give_up_after=2)
SERVE = "import time; print('{name} serving', flush=True); time.sleep(600)"
CRASH = "print('boom: the config is wrong', flush=True); raise SystemExit(3)"


def child(tmp_path: Path, name: str, code: str, **options: object) -> ManagedProcess:
    argv = [sys.executable, "-c", code.format(name=name)]
    return ManagedProcess(name, argv, tmp_path / "logs" / f"{name}.log", **options).start()  # type: ignore[arg-type]


@pytest.fixture
def processes() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for process in started:
        process.stop(grace_s=2)


def poll_until(supervisor: Supervisor, done: object, timeout_s: float = 60) -> None:
    """Poll the supervisor until `done()` holds (bounded: a supervisor that never gets there fails the test)."""
    deadline = time.monotonic() + timeout_s
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the supervisor never got there"
        supervisor.poll()
        time.sleep(0.02)


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_backoff_s=1, max_backoff_s=5)
    assert [policy.backoff_s(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_a_killed_service_is_restarted_reported_and_the_others_keep_running(
    tmp_path: Path, processes: list[ManagedProcess]
) -> None:
    processes += [child(tmp_path, "runner", SERVE), child(tmp_path, "ingest", SERVE)]
    reports: list[str] = []
    supervisor = Supervisor(processes, policy=FAST, report=reports.append, status_path=tmp_path / "status.json")
    killed, other = processes[0].pid, processes[1].pid
    poll_until(supervisor, lambda: "runner serving" in processes[0].log_tail())
    os.kill(killed, signal.SIGKILL)
    poll_until(supervisor, lambda: supervisor.services["runner"].restarts == 1)

    assert len(reports) == 1
    assert reports[0].startswith("runner exited with signal 9 (SIGKILL)")
    assert "restarting it in" in reports[0] and "runner serving" in reports[0]  # the last lines of its log
    assert processes[0].pid != killed and processes[0].alive
    assert processes[1].pid == other and processes[1].alive
    status = StackStatus.model_validate_json((tmp_path / "status.json").read_text())
    runner = next(s for s in status.services if s.name == "runner")
    assert (runner.pid, runner.restarts, runner.state) == (processes[0].pid, 1, ServiceState.RUNNING)
    assert runner.last_exit == "signal 9 (SIGKILL)"


def test_a_service_that_keeps_crashing_is_given_up_on_and_the_others_keep_running(
    tmp_path: Path, processes: list[ManagedProcess]
) -> None:
    processes += [child(tmp_path, "scorer", CRASH), child(tmp_path, "ingest", SERVE)]
    reports: list[str] = []
    supervisor = Supervisor(processes, policy=FAST, report=reports.append, status_path=tmp_path / "status.json")
    other = processes[1].pid
    poll_until(supervisor, lambda: supervisor.services["scorer"].state is ServiceState.FAILED)

    assert len(reports) == 3  # two restarts, then given up
    assert all(r.startswith("scorer exited with status 3") and "boom: the config is wrong" in r for r in reports)
    assert "no longer restarted" in reports[-1] and "the other services keep running" in reports[-1]
    for _ in range(10):  # a failed service stays down
        supervisor.poll()
    assert supervisor.services["scorer"].restarts == 2
    assert processes[1].pid == other and processes[1].alive
    scorer = StackStatus.model_validate_json((tmp_path / "status.json").read_text()).services[0]
    assert (scorer.state, scorer.restarts, scorer.last_exit) == (ServiceState.FAILED, 2, "status 3")


def test_a_crash_after_a_stable_run_starts_the_count_over(tmp_path: Path, processes: list[ManagedProcess]) -> None:
    processes.append(child(tmp_path, "bridge", CRASH))
    policy = RestartPolicy(first_backoff_s=0.05, stable_after_s=0, give_up_after=1)  # every run counts as stable
    supervisor = Supervisor(processes, policy=policy, report=lambda _: None, status_path=tmp_path / "status.json")
    poll_until(supervisor, lambda: supervisor.services["bridge"].restarts >= 3)
    assert supervisor.services["bridge"].state is not ServiceState.FAILED


def test_status_lists_every_service_with_pid_uptime_restarts_and_health(
    tmp_path: Path, processes: list[ManagedProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as listening:  # what the "ingest" child's health probe finds
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        processes += [
            child(tmp_path, "ingest", SERVE, ready=tcp_ready("127.0.0.1", port)),
            child(tmp_path, "nats-server", SERVE, ready=tcp_ready("127.0.0.1", 1)),  # nothing listens there
            child(tmp_path, "runner", SERVE),
        ]
        supervisor = Supervisor(processes, policy=FAST, report=lambda _: None, status_path=status_file(tmp_path))
        with pytest.raises(SystemExit) as exited:
            main(["status", "--data-dir", str(tmp_path), "--json"])
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert exited.value.code == 1  # one service is failing its probe
    assert {name: (row["pid"], row["restarts"], row["health"]) for name, row in rows.items()} == {
        "ingest": (processes[0].pid, 0, "ok"),
        "nats-server": (processes[1].pid, 0, "failing"),
        "runner": (processes[2].pid, 0, "-"),
    }
    assert all(row["uptime_s"] >= 0 and row["memory_bytes"] > 0 for row in rows.values())

    main_table = ["status", "--data-dir", str(tmp_path)]
    with pytest.raises(SystemExit):
        main(main_table)
    table = capsys.readouterr().out
    for process in processes:
        assert process.name in table and str(process.pid) in table
    supervisor.remove_status()


def test_status_without_a_stack_says_how_to_start_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "no local stack runs on" in capsys.readouterr().err
    gone = StackStatus(supervisor_pid=2**22 + 1, services=[])  # above the kernel's pid_max: no such process
    status_file(tmp_path).write_text(gone.model_dump_json())
    with pytest.raises(NoStackError, match="is not running"):
        read_status(tmp_path)
    assert not tcp_ready("127.0.0.1", 1)()

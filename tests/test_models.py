"""The shared models and storage keys: what they accept and what they refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from leadersboard import keys
from leadersboard.keys import ManifestKey, new_submission_id, parse_manifest_key
from leadersboard.models.api import CreateSubmissionRequest
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.submission import DeclaredFile, Manifest, entrypoint_problem, missing_declared


def _request(*paths: str, **extra: Any) -> dict[str, Any]:
    return {"files": [{"path": p, "size": 1} for p in paths], **extra}


def test_a_plain_request_is_accepted_with_defaults() -> None:
    body = CreateSubmissionRequest.model_validate(_request("main.py", "config.yaml", "src/model.py"))
    assert body.entrypoint == "main.py"
    assert body.config == "config.yaml"
    assert [f.path for f in body.files] == ["main.py", "config.yaml", "src/model.py"]


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "a//b", "./main.py", "a\\b", ""])
def test_unsafe_file_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError) as info:
        CreateSubmissionRequest.model_validate(_request("main.py", path))
    assert info.value.errors()[0]["loc"][:3] == ("files", 1, "path")


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"duplicate path 'main\.py'"):
        CreateSubmissionRequest.model_validate(_request("main.py", "config.yaml", "main.py"))


def test_an_empty_files_list_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        CreateSubmissionRequest.model_validate({"files": []})
    assert info.value.errors()[0]["loc"] == ("files",)


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        CreateSubmissionRequest.model_validate({"files": [{"path": "main.py", "size": -1}]})
    assert info.value.errors()[0]["loc"] == ("files", 0, "size")


def test_missing_declared_files() -> None:
    complete = CreateSubmissionRequest.model_validate(_request("main.py", "config.yaml"))
    assert complete.missing_declared_files() == []
    custom = CreateSubmissionRequest.model_validate(_request("run.py", "config.yaml", entrypoint="train.py"))
    assert custom.missing_declared_files() == ["train.py"]
    neither = CreateSubmissionRequest.model_validate(_request("data.zip"))
    assert neither.missing_declared_files() == ["main.py", "config.yaml"]


def test_the_entrypoint_and_config_must_be_among_the_files_and_the_entrypoint_python() -> None:
    assert missing_declared("main.py", "config.yaml", {"config.yaml", "main.py", "data.zip"}) == []
    assert missing_declared("train.py", "c.yaml", {"main.py": 1}) == [
        DeclaredFile("entrypoint", "train.py"),
        DeclaredFile("config", "c.yaml"),
    ]
    assert missing_declared("main.py", "c.yaml", ["main.py"]) == [DeclaredFile("config", "c.yaml")]
    assert entrypoint_problem("src/main.py") is None
    assert entrypoint_problem("run.sh") == "the entrypoint 'run.sh' is not a Python file (.py)"


def test_metrics_accept_ints_and_floats() -> None:
    metrics = MetricsFile.model_validate({"params": {"lr": 0.1}, "metrics": {"image_AUROC": 0.93, "epochs": 3}})
    assert metrics.metrics == {"image_AUROC": 0.93, "epochs": 3.0}
    assert metrics.params_as_strings() == {"lr": "0.1"}


@pytest.mark.parametrize(
    "metrics",
    [
        {"auroc": "0.9"},
        {"auroc": True},
        {"auroc": float("nan")},
        {"auroc": float("inf")},
        {"auroc": float("-inf")},
        [0.9],
        0.9,
    ],
)
def test_metrics_refuse_anything_but_finite_numbers(metrics: Any) -> None:
    with pytest.raises(ValidationError) as info:
        MetricsFile.model_validate({"metrics": metrics})
    assert info.value.errors()[0]["loc"] == ("metrics",)


def test_metrics_are_required() -> None:
    with pytest.raises(ValidationError) as info:
        MetricsFile.model_validate({"params": {}})
    assert info.value.errors()[0]["loc"] == ("metrics",)
    assert info.value.errors()[0]["type"] == "missing"


def _manifest(user: str) -> dict[str, Any]:
    return {
        "submission_id": new_submission_id(),
        "user": user,
        "entrypoint": "main.py",
        "config": "config.yaml",
        "files": [{"path": "main.py", "size": 10}],
        "created_at": datetime.now(UTC).isoformat(),
    }


def test_a_manifest_with_a_good_user_is_accepted() -> None:
    assert Manifest.model_validate(_manifest("alice_01")).user == "alice_01"


@pytest.mark.parametrize("user", ["Alice", "../alice", "alice/bob", "", "-alice", "a" * 64, "al ice"])
def test_a_manifest_with_a_bad_user_is_refused(user: str) -> None:
    with pytest.raises(ValidationError) as info:
        Manifest.model_validate(_manifest(user))
    assert info.value.errors()[0]["loc"] == ("user",)


def test_parse_manifest_key_accepts_a_manifest() -> None:
    submission_id = new_submission_id()
    parsed = parse_manifest_key(f"submissions/alice/{submission_id}/manifest.json")
    assert parsed == ManifestKey(user="alice", submission_id=submission_id)


@pytest.mark.parametrize(
    "key",
    [
        "submissions/alice/0123456789abcdef/files/manifest.json",
        "submissions/alice/0123456789abcdef/files/main.py",
        "results/alice/0123456789abcdef/manifest.json",
        "submissions/alice/0123456789abcdef/extra/manifest.json",
        "submissions/alice/team/0123456789abcdef/manifest.json",
        "submissions/Alice/0123456789abcdef/manifest.json",
        "submissions/alice/0123456789ABCDEF/manifest.json",
        "submissions/alice/0123456789abcdef/manifest.json.tmp",
        "prefix/submissions/alice/0123456789abcdef/manifest.json",
    ],
)
def test_parse_manifest_key_refuses_other_keys(key: str) -> None:
    assert parse_manifest_key(key) is None


def test_submission_ids_sort_by_creation_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_700_000_000.000, 1_700_000_000.001, 1_700_000_000.002, 1_800_000_000.0])
    monkeypatch.setattr(keys.time, "time", lambda: next(clock))
    ids = [new_submission_id() for _ in range(4)]
    assert ids == sorted(ids)
    assert len({len(i) for i in ids}) == 1


def test_submission_ids_are_unique_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys.time, "time", lambda: 1_700_000_000.0)
    ids = [new_submission_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(parse_manifest_key(f"submissions/alice/{i}/manifest.json") for i in ids)


def test_a_disabling_cancels_unfinished_jobs_and_recognises_the_ones_it_stopped() -> None:
    from datetime import timedelta

    from leadersboard.models.records import DisabledUser, JobRecord, JobStatus

    state = DisabledUser(user="erin", disabled_by="admin")
    pending = JobRecord(
        submission_id="0123456789ab", user="erin", entrypoint="main.py", config="c.yaml", created_at=state.disabled_at
    )
    cancelled = state.cancel(pending.model_copy(deep=True))
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert cancelled.error == "cancelled by admin: user erin was disabled"
    assert state.stopped(cancelled)
    assert state.cancel(cancelled.model_copy(deep=True)) is None, "a finished job stays as it is"
    earlier = cancelled.model_copy(update={"finished_at": state.disabled_at - timedelta(days=1)})
    assert not state.stopped(earlier), "a job cancelled by an earlier disabling is not this one's"
    completed = pending.model_copy(update={"status": JobStatus.COMPLETED})
    assert state.cancel(completed) is None and not state.stopped(completed)

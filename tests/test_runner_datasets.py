"""Datasets, checksums and metrics through `execute_job` with the session's real SeaweedFS, sandboxed:
a zip is extracted once per content hash and mounted read-only; a file not matching its sha256 fails."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from gpu_runner.datasets import DatasetCache
from gpu_runner.job import execute_job
from gpu_runner.settings import RunnerSettings
from gpu_runner.workspace import extract_zip
from leadersboard.models.base import utcnow
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.models.submission import FileSpec
from leadersboard.s3 import make_client
from leadersboard.settings import S3Settings
from tests.sandbox_fixtures import make_zip, runner_settings

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def test_a_dataset_is_extracted_once_per_content_hash(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "pcb1.zip", {"pcb1/Data/Images/Normal/a.png": b"png"})
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    cache = DatasetCache(tmp_path / "cache")
    first = cache.ensure(archive, sha, name="pcb1.zip", extract=extract_zip)

    def must_not_extract(_archive: Path, _destination: Path) -> None:
        raise AssertionError("extracted again")

    second = cache.ensure(archive, sha, name="pcb1.zip", extract=must_not_extract)
    assert (first.hit, second.hit) == (False, True)
    assert second.tree == first.tree and [e.name for e in second.entries()] == ["pcb1"]
    assert (second.tree / "pcb1/Data/Images/Normal/a.png").read_bytes() == b"png"
    assert [p.name for p in cache.root.iterdir()] == [sha]  # no staging directory left behind


@pytest.fixture
def store(s3_settings: S3Settings, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunnerSettings:
    monkeypatch.chdir(tmp_path)  # MLflow's local artifact store
    return runner_settings(
        data_root,
        **s3_settings.model_dump(),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        dataset_cache_dir=data_root / f"dataset-cache-{os.urandom(4).hex()}",
    )


def submit(
    settings: RunnerSettings, files: dict[str, bytes], *, declared: dict[str, str] | None = None, blob: bool = False
) -> JobRecord:
    client = make_client(settings)
    sid = f"{os.urandom(8).hex()}"
    specs = []
    for path, data in files.items():
        sha256 = (declared or {}).get(path)
        spec = FileSpec(path=path, size=len(data), sha256=sha256, blob=blob and sha256 is not None)
        client.put_object(Bucket=settings.bucket, Key=spec.store_key("u", sid), Body=data)
        specs.append(spec)
    return JobRecord(
        submission_id=sid, user="u", status=JobStatus.RUNNING, entrypoint="main.py", config="config.yaml",
        files=specs, created_at=utcnow(),
    )  # fmt: skip


def run_record(settings: RunnerSettings, record: JobRecord) -> tuple[str, str | None, JobStatus]:
    outcome = asyncio.run(execute_job(settings, make_client(settings), record, asyncio.Event()))
    key = f"results/u/{record.submission_id}/job.log"
    log = make_client(settings).get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode()
    return log, outcome.error, outcome.status


MAIN_READING_DATASET = b"""
import argparse, json, os, pathlib
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
print("dataset:", sorted(str(x) for x in pathlib.Path("pcb1").rglob("*.png")))
try:
    open("pcb1/Data/Images/Normal/a.png", "wb").write(b"tampered")
except OSError as exc:
    print("dataset read-only:", exc.strerror)
pathlib.Path(a.output, "metrics.json").write_text(json.dumps({"params": {}, "metrics": {"n": 1}}))
"""


def test_a_resubmitted_dataset_comes_from_the_cache_read_only(store: RunnerSettings, tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "pcb1.zip", {"pcb1/Data/Images/Normal/a.png": b"png"}).read_bytes()
    files = {"main.py": MAIN_READING_DATASET, "config.yaml": b"data: {name: pcb1}\n", "pcb1.zip": archive}
    first_log, error, status = run_record(store, submit(store, files))
    assert status is JobStatus.COMPLETED, error
    assert "[leadersboard] extracted into the dataset cache: pcb1.zip" in first_log
    second_log, error, status = run_record(store, submit(store, files))
    assert status is JobStatus.COMPLETED, error
    assert "[leadersboard] dataset cache hit: pcb1.zip" in second_log
    assert "extracted" not in second_log
    assert "dataset: ['pcb1/Data/Images/Normal/a.png']" in second_log
    assert "dataset read-only: Read-only file system" in second_log
    cache_dir = store.dataset_cache_dir
    assert cache_dir is not None
    sha = hashlib.sha256(archive).hexdigest()
    assert (cache_dir / sha / "tree/pcb1/Data/Images/Normal/a.png").read_bytes() == b"png"


def test_a_file_not_matching_its_declared_sha256_fails_the_job(store: RunnerSettings) -> None:
    files = {"main.py": b"print('never runs')", "config.yaml": b"a: 1\n"}
    record = submit(store, files, declared={"config.yaml": hashlib.sha256(b"something else").hexdigest()})
    log, error, status = run_record(store, record)
    assert status is JobStatus.FAILED
    assert error is not None and error.startswith("config.yaml does not match its declared sha256: declared ")
    assert "never runs" not in log


def test_metrics_json_as_a_link_to_a_runner_file_is_refused(store: RunnerSettings) -> None:
    secret = store.work_dir.parent.parent / "secrets.json"
    main = f"""
import argparse, os
p = argparse.ArgumentParser(); p.add_argument("--config"); p.add_argument("--output"); a = p.parse_args()
os.symlink({str(secret)!r}, os.path.join(a.output, "metrics.json"))
"""
    log, error, status = run_record(store, submit(store, {"main.py": main.encode(), "config.yaml": b"a: 1\n"}))
    assert status is JobStatus.FAILED
    assert error == "metrics.json is malformed: it is a symbolic link; write a regular file"
    assert "top-secret" not in log


def test_a_corrupt_blob_fails_the_job_and_is_removed_so_a_resubmission_uploads_it_again(
    store: RunnerSettings,
) -> None:
    files = {"main.py": b"print('never runs')", "config.yaml": b"a: 1\n", "data.zip": b"not what was declared"}
    declared = hashlib.sha256(b"the real dataset").hexdigest()
    record = submit(store, files, declared={"data.zip": declared}, blob=True)
    blob_key = record.files[-1].store_key("u", record.submission_id)
    assert blob_key.startswith("blobs/u/sha256/")
    _, error, status = run_record(store, record)
    assert status is JobStatus.FAILED
    assert error is not None and error.startswith(f"data.zip does not match its declared sha256: declared {declared}")
    assert error.endswith("the corrupt stored copy was removed: submit again to upload the file anew")
    listed = make_client(store).list_objects_v2(Bucket=store.bucket, Prefix=blob_key)
    assert listed.get("KeyCount", 0) == 0

"""Registering official benchmarks through the real ingest app, nats-server and SeaweedFS, with the real client
and the real `leadersboard` command: versions, resumed uploads, the listing everyone sees, the admin's checks,
and the re-scoring requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS
from pydantic import SecretStr

from ingest.settings import IngestSettings
from leadersboard import keys
from leadersboard.benchmarks.package import pack
from leadersboard.client import ApiError, Client
from leadersboard.jobs import JobStore
from leadersboard.models.base import utcnow
from leadersboard.models.queue import ScoreRequest
from leadersboard.models.records import JobRecord, JobStatus
from leadersboard.s3 import S3Client, ensure_bucket, make_client
from leadersboard.settings import NatsSettings, S3Settings
from tests.api_fixtures import ADMIN_TOKEN, Api, bearer

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "examples" / "padim-benchmark" / "make_benchmark.py"
CLI = str(Path(sys.executable).parent / "leadersboard")
TRAIN, GOOD, DEFECTIVE = 4, 3, 3
TEST_NAME = re.compile(r"^[a-z]+/test/[0-9a-f]{16}\.png$")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's synthetic benchmark, small: 2 categories of 4 train and 3 + 3 test images."""
    out = tmp_path_factory.mktemp("benchmark") / "synthetic"
    subprocess.run(
        [sys.executable, str(GENERATOR), str(out), "--categories", "2", "--train", str(TRAIN),
         "--test-good", str(GOOD), "--test-defective", str(DEFECTIVE), "--size", "32"],
        check=True, capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture
def reference_settings(s3_settings: S3Settings) -> S3Settings:
    """The test's bucket, and a reference bucket of its own."""
    settings = s3_settings.model_copy(update={"reference_bucket": "r" + secrets.token_hex(6)})
    ensure_bucket(make_client(settings), settings.reference_bucket)
    return settings


@pytest.fixture
def settings(nc: NATS, nats_settings: NatsSettings, reference_settings: S3Settings) -> IngestSettings:
    """The shared fixture's ingest settings with the reference bucket; `nc` has declared the topology."""
    return IngestSettings(
        **nats_settings.model_dump(), **reference_settings.model_dump(), admin_token=SecretStr(ADMIN_TOKEN)
    )


@pytest.fixture
def s3(reference_settings: S3Settings) -> S3Client:
    return make_client(reference_settings)


def api_url(api: Api) -> str:
    return str(api.make_url("/")).rstrip("/")


class RefusingReference(httpx.BaseTransport):
    """The real transport, except that the store refuses every request for the reference bucket (an upload
    interrupted after the public part)."""

    def __init__(self, reference_bucket: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.prefix = f"/{reference_bucket}/"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(self.prefix):
            return httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>", request=request)
        return self.inner.handle_request(request)


def stored(s3: S3Client, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


async def test_register_list_and_add_again_as_a_new_version(
    api: Api, source: Path, s3: S3Client, reference_settings: S3Settings
) -> None:
    with Client(api_url(api), ADMIN_TOKEN) as client:
        first = await asyncio.to_thread(client.add_benchmark, "synthetic", source, description="toy", license="MIT")
        view = first.benchmark
        assert (view.name, view.version, view.layout, first.resumed) == ("synthetic", 1, "mvtec_ad", False)
        assert {name: (c.train, c.test, c.masks) for name, c in view.categories.items()} == {
            name: (TRAIN, GOOD + DEFECTIVE, True) for name in ("carpet", "leather")
        }
        assert sorted(first.stats.uploaded) == ["public.zip", "reference.zip"]

        # The parts as stored: the public one holds no label in any name; the reference one holds them.
        public = stored(s3, reference_settings.bucket, keys.benchmark_public_key("synthetic", 1))
        reference = stored(s3, reference_settings.reference_bucket, keys.benchmark_reference_key("synthetic", 1))
        names = zipfile.ZipFile(io.BytesIO(public)).namelist()
        tests = [name for name in names if "/test/" in name]
        assert len(tests) == 2 * (GOOD + DEFECTIVE) and all(TEST_NAME.match(name) for name in tests)
        assert "index.json" in names and not any("ground_truth" in n or "mask" in n for n in names)
        assert "reference.json" in zipfile.ZipFile(io.BytesIO(reference)).namelist()

        second = await asyncio.to_thread(client.add_benchmark, "synthetic", source, test_labels_public=False)
        assert (second.benchmark.version, second.resumed) == (2, False)
        assert first.benchmark.test_labels_public and not second.benchmark.test_labels_public
        latest = await asyncio.to_thread(client.benchmarks)
        every = await asyncio.to_thread(client.benchmarks, all_versions=True)
    assert [(v.name, v.version) for v in latest] == [("synthetic", 2)]
    assert [(v.name, v.version, v.description) for v in every] == [("synthetic", 1, "toy"), ("synthetic", 2, "")]


async def test_an_interrupted_upload_resumes_the_same_version_and_sends_only_what_is_missing(
    api: Api, alice: str, source: Path, reference_settings: S3Settings, tmp_path: Path
) -> None:
    refusing = RefusingReference(reference_settings.reference_bucket)
    cache = tmp_path / "cache"  # where the packed parts wait between the two clients
    interrupted = Client(api_url(api), ADMIN_TOKEN, store_transport=refusing, cache_dir=cache)
    with interrupted as client, pytest.raises(ApiError) as refused:
        await asyncio.to_thread(client.add_benchmark, "synthetic", source)
    assert (refused.value.status, refused.value.code) == (403, "AccessDenied")  # the store's, never retried

    # An uploading version is listed nowhere, and cannot be marked ready without its reference part.
    listing = await api.get("/api/v1/benchmarks", params={"all": "true"}, headers=bearer(alice))
    assert (listing.status, await listing.json()) == (200, {"benchmarks": []})
    early = await api.post("/api/v1/admin/benchmarks/synthetic/versions/1/ready", headers=bearer(ADMIN_TOKEN))
    assert early.status == 409
    assert (await early.json())["error"]["message"].startswith("reference: the reference part")

    with Client(api_url(api), ADMIN_TOKEN, cache_dir=cache) as client:
        resumed = await asyncio.to_thread(client.add_benchmark, "synthetic", source)
    assert (resumed.benchmark.version, resumed.resumed) == (1, True)
    assert (resumed.stats.present, resumed.stats.uploaded) == (["public.zip"], ["reference.zip"])


def create_body(name: str = "toy", version: int = 1) -> dict[str, Any]:
    part = {"size": 100, "sha256": "0" * 64}
    return {
        "name": name, "version": version, "layout": "folder", "public_sha256": "1" * 64, "reference_sha256": "2" * 64,
        "categories": {"cat": {"train": 1, "test": 2, "masks": False}}, "public": part, "reference": part,
    }  # fmt: skip


async def test_the_admin_routes_refuse_users_and_check_what_they_are_given(api: Api, alice: str) -> None:
    admin = bearer(ADMIN_TOKEN)
    for path in ("/api/v1/admin/benchmarks", "/api/v1/admin/benchmarks/toy/versions/1/ready",
                 "/api/v1/admin/benchmarks/toy/rescore"):  # fmt: skip
        refused = await api.post(path, json=create_body(), headers=bearer(alice))
        assert refused.status == 403, path

    bad = await api.post("/api/v1/admin/benchmarks", json=create_body(name="Bad/Name"), headers=admin)
    assert bad.status == 400
    assert (await bad.json())["error"]["message"].startswith("invalid request: name:")

    created = await api.post("/api/v1/admin/benchmarks", json=create_body(), headers=admin)
    assert created.status == 201
    answer = await created.json()
    assert (answer["version"], answer["resumed"], answer["public"]["method"]) == (1, False, "PUT")
    again = await api.post("/api/v1/admin/benchmarks", json=create_body(), headers=admin)
    assert (again.status, (await again.json())["resumed"]) == (201, True)

    # Another content for a taken version: 409, and the header names the version to pack for.
    other = create_body() | {"public_sha256": "3" * 64}
    taken = await api.post("/api/v1/admin/benchmarks", json=other, headers=admin)
    assert (taken.status, taken.headers["X-Next-Version"]) == (409, "2")
    skipped = await api.post("/api/v1/admin/benchmarks", json=create_body(version=5), headers=admin)
    assert (skipped.status, skipped.headers["X-Next-Version"]) == (409, "2")

    ready = await api.post("/api/v1/admin/benchmarks/toy/versions/1/ready", headers=admin)
    assert ready.status == 409
    message = (await ready.json())["error"]["message"]
    assert "public: the public part (public.zip) is not uploaded yet" in message
    assert "reference: the reference part (reference.zip) is not uploaded yet" in message
    missing = await api.post("/api/v1/admin/benchmarks/toy/versions/9/ready", headers=admin)
    assert missing.status == 404
    unknown = await api.post("/api/v1/admin/benchmarks/nothing/rescore", headers=admin)
    assert unknown.status == 404

    listing = await api.get("/api/v1/benchmarks", params={"all": "true"}, headers=bearer(alice))
    assert (await listing.json()) == {"benchmarks": []}


async def test_the_listing_shows_counts_but_no_label_information(api: Api, alice: str, source: Path) -> None:
    with Client(api_url(api), ADMIN_TOKEN) as client:
        await asyncio.to_thread(client.add_benchmark, "synthetic", source, description="toy")
    listing = await api.get("/api/v1/benchmarks", headers=bearer(alice))
    assert listing.status == 200
    (entry,) = (await listing.json())["benchmarks"]
    assert set(entry) == {
        "name",
        "version",
        "description",
        "license",
        "layout",
        "test_labels_public",
        "created_at",
        "categories",
    }
    assert {tuple(sorted(category)) for category in entry["categories"].values()} == {("masks", "test", "train")}
    assert entry["test_labels_public"] is True  # whether labels are public elsewhere: no label of any image
    text = json.dumps({key: value for key, value in entry.items() if key != "test_labels_public"})
    assert not any(word in text for word in ("good", "defect", "bright", "dark", "label", "anomal"))


async def test_rescore_asks_for_every_job_of_the_benchmark_with_predictions(
    api: Api, nc: NATS, jobs: JobStore, source: Path, nats_settings: NatsSettings
) -> None:
    with Client(api_url(api), ADMIN_TOKEN) as client:
        await asyncio.to_thread(client.add_benchmark, "synthetic", source)
    now = utcnow()
    cases = {
        "a0completed": ("synthetic", JobStatus.COMPLETED, now),
        "a1scoredfailed": ("synthetic", JobStatus.FAILED, now),
        "a2runfailed": ("synthetic", JobStatus.FAILED, None),  # failed before any prediction was scored
        "a3scoring": ("synthetic", JobStatus.RUNNING, now),  # its first scoring is on its way
        "a4othercompleted": ("other", JobStatus.COMPLETED, now),
    }
    for submission_id, (benchmark, status, requested) in cases.items():
        await jobs.create(
            JobRecord(submission_id=submission_id, user="alice", entrypoint="main.py", config="config.yaml",
                      created_at=now, status=status, benchmark=benchmark, benchmark_version=1,
                      scoring_requested_at=requested)
        )  # fmt: skip

    answer = await api.post("/api/v1/admin/benchmarks/synthetic/rescore", headers=bearer(ADMIN_TOKEN))
    assert (answer.status, await answer.json()) == (200, {"benchmark": "synthetic", "requested": 2})
    consumer = await nc.jetstream().pull_subscribe(nats_settings.scoring_subject, stream=nats_settings.scoring_stream)
    messages = await consumer.fetch(10, timeout=5)
    requests = [ScoreRequest.model_validate_json(message.data) for message in messages]
    assert sorted((r.submission_id, r.benchmark, r.benchmark_version, r.rescore) for r in requests) == [
        ("a0completed", "synthetic", 1, True),
        ("a1scoredfailed", "synthetic", 1, True),
    ]


def test_pack_gives_the_same_bytes_for_the_same_tree(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "b").mkdir(parents=True)
    (tree / "b" / "x.png").write_bytes(b"\x89PNG-ish")
    (tree / "a.json").write_text("{}")
    first = pack(tree, tmp_path / "1.zip")
    os.utime(tree / "a.json", (0, 0))  # a different modification time changes nothing
    second = pack(tree, tmp_path / "2.zip")
    assert first == second
    assert first.sha256 == hashlib.sha256((tmp_path / "2.zip").read_bytes()).hexdigest()
    assert zipfile.ZipFile(tmp_path / "1.zip").namelist() == ["a.json", "b/x.png"]


async def test_the_cli_adds_a_benchmark_and_lists_it_as_json(api: Api, source: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERSBOARD_")}
    env |= {"LEADERSBOARD_URL": api_url(api), "LEADERSBOARD_TOKEN": ADMIN_TOKEN, "COLUMNS": "200",
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
        return done

    added = await asyncio.to_thread(run, "admin", "benchmark", "add", "synthetic", str(source), "--license", "MIT")
    assert "ready: synthetic v1 (mvtec_ad layout)" in added.stdout
    assert re.search(rf"carpet\s+│\s+{TRAIN}\s+│\s+{GOOD + DEFECTIVE}\s+│\s+yes", added.stdout), added.stdout
    listed = json.loads((await asyncio.to_thread(run, "benchmarks", "--json")).stdout)
    assert [(b["name"], b["version"], b["license"], sorted(b["categories"])) for b in listed] == [
        ("synthetic", 1, "MIT", ["carpet", "leather"])
    ]
    assert not (tmp_path / "cache" / "leadersboard" / "benchmarks").exists() or not any(
        (tmp_path / "cache" / "leadersboard" / "benchmarks").iterdir()
    ), "the staged parts are removed once the version is ready"

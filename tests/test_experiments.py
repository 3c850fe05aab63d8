"""How the platform's work reads in MLflow (leadersboard/experiments.py): one spelling per dataset, readable run
names, descriptions that say what an experiment holds and link a run to its submission, and the runs view.
The same functions against a real MLflow (a SQLite store): gpu_runner.tracking.log_run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from gpu_runner.tracking import SubmissionLinks, log_run
from leadersboard.experiments import (
    EXPERIMENT_KIND,
    TAG_EXPERIMENT_KIND,
    TAG_NOTE,
    VIEW_KEY,
    dataset_name,
    experiment_name,
    experiment_tags,
    run_description,
    run_name,
    runs_url,
    view_state,
)
from leadersboard.limits import MAX_DATASET_CHARS, MLFLOW_MAX_RUN_NAME_CHARS
from leadersboard.models.base import utcnow
from leadersboard.models.metrics import MetricsFile
from leadersboard.models.records import JobRecord
from leadersboard.models.scores import MetricSet

SUBMISSION = "01a22887a42e14b265d9e2ce"
LINKS = SubmissionLinks(web_url="https://lb.example.org/", api_url="https://api.example.org")


@pytest.mark.parametrize(
    ("spellings", "name"),
    [
        (["pcb1", "visa/pcb1", "VisA-PCB1", "VISA_pcb1", " visa / PCB1 ", "VisA pcb1"], "pcb1"),
        (["metal_nut", "Metal Nut", "mvtec/metal-nut", "MVTec AD/metal nut", "mvtec_ad_metal_nut"], "metal_nut"),
        (["VisA", "visa/", "visa", "visa/visa"], "visa"),
        (["mvtec", "MVTec AD", "mvtec-ad", "MVTecAD"], "mvtec"),
        (["my data/v2", "My-Data / V2", "my_data//v2"], "my_data/v2"),
        (["", "   ", "---", "//"], "default"),
    ],
)
def test_one_dataset_has_one_spelling(spellings: list[str], name: str) -> None:
    assert {dataset_name(spelling) for spelling in spellings} == {name}


ODD_NAMES = ["pcb1", "VisA-PCB1", "Ünïcode Set", "a" * 5000, "x/" * 300, "benchmark:synth", "é-x", "mvtec_ad_pill",
             "visa_visa-x", "İx"]  # fmt: skip


@pytest.mark.parametrize("text", ODD_NAMES)
def test_a_dataset_name_is_bounded_stable_and_never_a_benchmarks(text: str) -> None:
    name = dataset_name(text)
    assert 0 < len(name) <= MAX_DATASET_CHARS
    assert dataset_name(name) == name  # what the runner stored keeps its spelling
    assert not name.startswith("benchmark:")  # a self-reported dataset never lands among verified runs


def test_a_benchmark_job_goes_to_its_benchmarks_experiment() -> None:
    assert experiment_name(benchmark="synth", dataset="anything") == "benchmark:synth"
    assert experiment_name(benchmark=None, dataset="VisA-PCB1") == "pcb1"
    assert experiment_name(benchmark=None, dataset="benchmark:synth") == "benchmark_synth"


def test_experiments_open_on_their_runs_and_say_what_they_hold() -> None:
    benchmark = experiment_tags("benchmark:synth", benchmark_version=2)
    own = experiment_tags("pcb1")
    assert benchmark[TAG_EXPERIMENT_KIND] == own[TAG_EXPERIMENT_KIND] == EXPERIMENT_KIND == "custom_model_development"
    assert benchmark[TAG_NOTE].startswith("benchmark synth (version 2), verified by the platform")
    assert own[TAG_NOTE].startswith("self-reported: pcb1")


def test_the_view_shows_the_main_metrics_best_first() -> None:
    benchmark = json.loads(view_state("benchmark:synth"))
    expected = [f"metrics.`verified_{m}{end}`" for m in MetricSet.model_fields for end in ("", "_ci_low", "_ci_high")]
    assert [c for c in benchmark["selectedColumns"] if c.startswith("metrics.")] == expected
    assert "tags.`leadersboard.verified`" in benchmark["selectedColumns"]
    assert (benchmark["orderByKey"], benchmark["orderByAsc"]) == ("metrics.`verified_image_AUROC`", False)
    own = json.loads(view_state("pcb1"))
    assert own["orderByKey"] == "metrics.`image_AUROC`" and "metrics.`wall_time_s`" in own["selectedColumns"]
    # Only keys MLflow's UI reads from a shared view (its search facets and its UI state).
    assert set(benchmark) | set(own) <= {"orderByKey", "orderByAsc", "selectedColumns"}


def test_a_run_name_is_method_dataset_and_short_id() -> None:
    assert run_name(method="padim", where="demo", submission_id=SUBMISSION) == "padim · demo · 01a2288"
    assert run_name(method=None, where="pcb1", submission_id=SUBMISSION) == "job · pcb1 · 01a2288"
    long = run_name(method="a\nb " * 500, where="d" * 500, submission_id=SUBMISSION)
    assert "\n" not in long and len(long) <= MLFLOW_MAX_RUN_NAME_CHARS and long.endswith(" · 01a2288")


def test_a_run_description_links_to_the_submission() -> None:
    note = run_description(SUBMISSION, web_url=LINKS.web_url, api_url=LINKS.api_url, description="PaDiM, resnet18")
    assert note.startswith("PaDiM, resnet18\n\n")
    assert f"(https://lb.example.org/#jobs/{SUBMISSION})" in note
    assert f"(https://api.example.org/api/v1/submissions/{SUBMISSION})" in note


def test_runs_urls() -> None:
    assert runs_url("http://h:5010/", "7") == f"http://h:5010/#/experiments/7/runs?viewStateShareKey={VIEW_KEY}"
    assert runs_url("http://h:5010", "7", "abc") == "http://h:5010/#/experiments/7/runs/abc"


def _record(submission_id: str, **fields: Any) -> JobRecord:
    record = {"entrypoint": "main.py", "config": "config.yaml", "created_at": utcnow()}
    return JobRecord(submission_id=submission_id, **record, **fields)


def _log(uri: str, record: JobRecord, dataset: str, tmp_path: Path) -> str:
    metrics = MetricsFile.model_validate({"params": {"method": "Padim"}, "metrics": {"image_AUROC": 0.9}})
    tracked = log_run(
        uri, record, dataset=dataset, metrics=metrics, wall_time_s=3.0, artifacts=[], outputs=[],
        output_root=tmp_path, succeeded=True, links=LINKS,
    )  # fmt: skip
    return tracked.run_id


def test_log_run_names_describes_and_tags_in_a_real_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow's local artifact store
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("pcb1")  # from before: no kind, no description, no view
    record = _record(SUBMISSION, user="alice", metadata={"description": "mine"})
    run_id = _log(uri, record, "pcb1", tmp_path)
    experiment = client.get_experiment(old)
    assert experiment.tags == experiment_tags("pcb1")
    run = client.get_run(run_id)
    assert run.info.experiment_id == old and run.info.run_name == "Padim · pcb1 · 01a2288"
    assert run.data.tags[TAG_NOTE].startswith("mine\n\nSubmission `01a22887a42e14b265d9e2ce`: [web page](")
    # A second attempt (a crashed runner's) finds the same run; a benchmark job lands in its benchmark's experiment.
    assert _log(uri, record, "pcb1", tmp_path) == run_id
    job = _record("b" * 24, user="bob", benchmark="synth", benchmark_version=3)
    benchmark_run = client.get_run(_log(uri, job, "benchmark:synth", tmp_path))
    assert benchmark_run.info.run_name == "Padim · synth · bbbbbbb"
    found = client.get_experiment_by_name("benchmark:synth")
    assert found is not None and found.experiment_id == benchmark_run.info.experiment_id
    assert found.tags[TAG_NOTE].startswith("benchmark synth (version 3), verified by the platform")

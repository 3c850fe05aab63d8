"""How the platform's work reads in MLflow: experiment names, run names, descriptions and the runs view.

One experiment per benchmark (`benchmark:<name>`, verified runs) and one per self-reported dataset, named by
`dataset_name` so that `pcb1`, `visa/pcb1` and `VisA-PCB1` land in one experiment (and one leaderboard).
Every experiment is tagged as a model-development experiment and carries a shared view (`view_state`) that
shows the main metrics as columns. (MLflow 3.17's UI picks where an experiment opens from its sidebar switch,
not from the tag: ingest's proxy gives that switch its default, ingest/mlflow_ui.py.)
"""

from __future__ import annotations

import json
import re

from leadersboard.limits import MAX_DATASET_CHARS, MLFLOW_MAX_RUN_NAME_CHARS
from leadersboard.models.scores import MetricSet
from leadersboard.tracking import TAG_VERIFIED, VERIFIED_PREFIX

__all__ = [
    "BENCHMARK_EXPERIMENT_PREFIX",
    "EXPERIMENT_KIND",
    "SELF_REPORTED_METRICS",
    "TAG_EXPERIMENT_KIND",
    "TAG_NOTE",
    "TAG_RUN_NAME",
    "VIEW_KEY",
    "dataset_name",
    "experiment_name",
    "experiment_tags",
    "run_description",
    "run_name",
    "runs_url",
    "view_state",
]

TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
"""What the experiments hold for MLflow (read by its clients and, before 3.17's workflow switch, by its UI)."""
TAG_NOTE = "mlflow.note.content"
"""The description of an experiment or a run in MLflow's UI (markdown)."""
TAG_RUN_NAME = "mlflow.runName"
BENCHMARK_EXPERIMENT_PREFIX = "benchmark:"
"""Keeps a benchmark's verified runs apart from a self-reported dataset of the same name."""
VIEW_KEY = "leadersboard"
"""MLflow has no server-side default for the runs table's columns; a shared view does the same: the experiment
tag `mlflow.sharedViewState.<key>` holds the view, and `#/experiments/<id>/runs?viewStateShareKey=<key>` opens
it (MLflow's "Share" button writes the same tag)."""
TAG_VIEW = f"mlflow.sharedViewState.{VIEW_KEY}"
SELF_REPORTED_METRICS = ("image_AUROC", "image_F1Score", "image_F1Max", "pixel_AUROC", "pixel_F1Score",
                         "pixel_AUPRO", "wall_time_s")  # fmt: skip
"""The columns of a self-reported experiment's view: anomalib's usual metric names (the first one ranks)."""
DEFAULT_DATASET = "default"

# Benchmark families whose name people write before a category in many ways (`VisA-PCB1`, `visa/pcb1`). Their
# categories do not overlap, so the category alone names one dataset.
_FAMILY_ALIASES = {"mvtec": "mvtec", "mvtec_ad": "mvtec", "mvtecad": "mvtec", "visa": "visa"}
_FAMILY = re.compile("^(" + "|".join(sorted(map(re.escape, _FAMILY_ALIASES), key=len, reverse=True)) + ")(?:[/_]|$)")
_SEPARATORS = re.compile(r"[^\w/]+")
_RUN_NAME_SEPARATOR = " · "


def dataset_name(text: str) -> str:
    """The one spelling of a self-reported dataset (its MLflow experiment and its leaderboard):

    - lower case; every run of characters other than letters, digits, `_` and `/` becomes `_`; no `_` or `/`
      at the ends or around a `/`, no `//` (`Metal Nut` -> `metal_nut`);
    - a known family (MVTec AD, VisA) before the category is left out: `VisA-PCB1`, `visa/pcb1`, `visa_pcb1`
      -> `pcb1`; `MVTec AD/metal-nut` -> `metal_nut`; the family alone is `mvtec` or `visa`;
    - nothing left: `default`; at most MAX_DATASET_CHARS characters.
    """
    name = _SEPARATORS.sub("_", text[: 10 * MAX_DATASET_CHARS].strip().lower())  # a config may say anything
    name = "/".join(part.strip("_") for part in name.split("/") if part.strip("_"))
    family = _FAMILY.match(name)
    while family is not None:  # `visa/visa_pcb1` too: what comes out is spelled the same the next time
        rest = name[family.end() :].strip("/_")
        name = rest or _FAMILY_ALIASES[family.group(1)]
        family = _FAMILY.match(rest) if rest else None
    return name[:MAX_DATASET_CHARS].rstrip("/_") or DEFAULT_DATASET


def experiment_name(*, benchmark: str | None, dataset: str) -> str:
    """A benchmark job's experiment is its benchmark's; any other job's is its dataset's, spelled once."""
    if benchmark is not None:
        return BENCHMARK_EXPERIMENT_PREFIX + benchmark
    return dataset_name(dataset)


def experiment_tags(name: str, *, benchmark_version: int | None = None) -> dict[str, str]:
    """What the experiment `name` is (its description), how MLflow opens it, and its view of the main metrics."""
    if name.startswith(BENCHMARK_EXPERIMENT_PREFIX):
        benchmark = name.removeprefix(BENCHMARK_EXPERIMENT_PREFIX)
        version = "" if benchmark_version is None else f" (version {benchmark_version})"
        note = (f"benchmark {benchmark}{version}, verified by the platform: runs tagged `{TAG_VERIFIED}` = true hold "
                f"the platform's scores (`{VERIFIED_PREFIX}<metric>` with `_ci_low`/`_ci_high`, a 95% interval) "
                "beside what each job reported about itself.")  # fmt: skip
    else:
        note = f"self-reported: {name}. Metrics as the jobs reported them in metrics.json; not checked by the platform."
    return {TAG_EXPERIMENT_KIND: EXPERIMENT_KIND, TAG_NOTE: note, TAG_VIEW: view_state(name)}


def view_state(experiment: str) -> str:
    """The runs table as MLflow's shared view of `experiment` (JSON): the main metrics as columns, the first
    ranking, best first. A benchmark's: the verified metrics with their intervals, and the `verified` tag."""
    if experiment.startswith(BENCHMARK_EXPERIMENT_PREFIX):
        metrics = [f"{VERIFIED_PREFIX}{m}{end}" for m in MetricSet.model_fields for end in ("", "_ci_low", "_ci_high")]
        extra = [f"tags.`{TAG_VERIFIED}`"]
    else:
        metrics, extra = list(SELF_REPORTED_METRICS), []
    columns = ["attributes.`User`", *(f"metrics.`{m}`" for m in metrics), *extra]
    return json.dumps({"orderByKey": f"metrics.`{metrics[0]}`", "orderByAsc": False, "selectedColumns": columns})


def run_name(*, method: str | None, where: str, submission_id: str) -> str:
    """`padim · visa/pcb1 · 01a2288`: what ran, on what (dataset or benchmark), and the submission's short id."""
    parts = [_label(method or "job", 40), _label(where, 60), submission_id[:7]]
    return _RUN_NAME_SEPARATOR.join(parts)[:MLFLOW_MAX_RUN_NAME_CHARS]


def _label(text: str, max_chars: int) -> str:
    """One line of at most `max_chars` characters (a user's text may hold newlines or be long)."""
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


def run_description(submission_id: str, *, web_url: str, api_url: str, description: str | None = None) -> str:
    """The run's note: the submission's own description, then links back to its page and its API record."""
    page = f"{web_url.rstrip('/')}/#jobs/{submission_id}"
    api = f"{api_url.rstrip('/')}/api/v1/submissions/{submission_id}"
    links = f"Submission `{submission_id}`: [web page]({page}) · [API]({api})"
    return f"{description}\n\n{links}" if description else links


def runs_url(public_url: str, experiment_id: str, run_id: str | None = None) -> str:
    """Where a person reads an experiment's runs (in the platform's view), or one run."""
    base = f"{public_url.rstrip('/')}/#/experiments/{experiment_id}"
    return f"{base}/runs/{run_id}" if run_id else f"{base}/runs?viewStateShareKey={VIEW_KEY}"

"""The platform's own scores of a job's predictions on an official benchmark (leadersboard/scoring).

JSON shape (the job record's `scores`), the metrics at the top level and per category:

    {"image_AUROC": {"value": .., "ci_low": .., "ci_high": ..}, "image_F1Max": {..},
     "pixel_AUROC": {..}, "pixel_AUPRO": {..},
     "per_category": {"<category>": {"image_AUROC": {..}, ...}},
     "scorer_version": "1", "resamples": 2000, "seed": 13}

The pixel metrics are absent (not null) when they were not computed: no anomaly maps, or a category
registered without masks. Explicit fields, plus a serializer that leaves the absent ones out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from leadersboard.models.base import StrictModel

__all__ = ["AVERAGE", "PIXEL_METRICS", "Interval", "MetricSet", "Scores", "ScoresFile"]

PIXEL_METRICS = ("pixel_AUROC", "pixel_AUPRO")
"""The metrics computed only from anomaly maps: left out of the JSON when not computed."""
AVERAGE = "average"
"""The group of the category means, beside the category names (`Scores.interval`, `ScoresFile.replicates`)."""


class Interval(StrictModel):
    """A metric's point value and its stratified bootstrap 95% interval."""

    value: float
    ci_low: float
    ci_high: float


class MetricSet(StrictModel):
    """The metrics of one category, or their average over categories."""

    image_AUROC: Interval
    image_F1Max: Interval
    pixel_AUROC: Interval | None = None
    pixel_AUPRO: Interval | None = None

    @model_serializer(mode="wrap")
    def _absent_pixel_metrics(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        data = handler(self)
        for name in PIXEL_METRICS:
            if data.get(name, 0) is None:
                del data[name]
        return data

    def metric(self, name: str) -> Interval | None:
        """The metric called `name`, None when it was not computed; a name that is no metric is an error."""
        interval: Interval | None = getattr(self, MetricSet.check(name))
        return interval

    @staticmethod
    def check(name: str) -> str:
        """`name` if it names a metric, else a ValueError listing them."""
        if name not in MetricSet.model_fields:
            raise ValueError(f"unknown metric {name!r}: one of {', '.join(MetricSet.model_fields)}")
        return name


class Scores(MetricSet):
    """Everything the scorer says about one job: averaged metrics at the top, then per category, then how
    the intervals were made (so a paired comparison can recreate the same resamples)."""

    per_category: dict[str, MetricSet]
    scorer_version: str
    resamples: int = Field(gt=0)
    seed: int
    test_labels_public: bool = True
    """Copied from the benchmark: scores against public test labels are "verified (public test labels)"."""

    @property
    def label(self) -> str:
        """How the scores are shown beside self-reported metrics."""
        return "verified (public test labels)" if self.test_labels_public else "verified"

    def interval(self, metric: str, group: str = AVERAGE) -> Interval | None:
        """`metric` of the category `group`, or of the category means (AVERAGE); None when not computed there."""
        metrics = self if group == AVERAGE else self.per_category.get(group)
        return None if metrics is None else metrics.metric(metric)


class ScoresFile(StrictModel):
    """`results/<user>/<id>/scores.json` (keys.scores_key), written by the scorer: the record's `Scores` and every
    metric's bootstrap replicates. Resample b draws the same images for every job of one benchmark version, so
    the differences of two jobs' replicates, b by b, make a paired comparison."""

    version: Literal[1] = 1
    benchmark: str
    benchmark_version: int
    scored_at: datetime
    scores: Scores
    replicates: dict[str, dict[str, list[float]]]
    """Per category name, and "average" for the category means: per metric name, its value on each resample,
    in resample order (`scores.resamples` of them)."""

"""`replicates.u16` (keys.replicates_key): a benchmark job's bootstrap replicates packed for HTTP range reads.

A board shows one metric of one group (a category, or AVERAGE) and needs, for each row it shows, that one
replicate vector. scores.json holds them all as JSON (2,000 floats x metrics x categories); this file holds the
same vectors as fixed-size records, so a reader fetches the one it needs with a Range GET of `resamples * 2`
bytes:

- Order (`layout`): the group AVERAGE first, then the categories sorted by name; within a group the metrics in
  `MetricSet` field order, only those computed there (present in `Scores`).
- Each vector: `scores.resamples` values, each `round(clip(v, 0, 1) * 65535)` as a little-endian uint16. Every
  metric lies in [0, 1], so decoding (`/ 65535`) is off by at most half a step, 0.5 / 65535 < 7.7e-6: far below
  the width of any bootstrap interval the board draws.

Jobs scored before this file existed have only scores.json: `from_scores_file` packs the same vector from it the
same way, so both paths give a reader identical bytes.
"""

from __future__ import annotations

import numpy as np

from leadersboard.models.scores import AVERAGE, MetricSet, Scores, ScoresFile
from leadersboard.scoring.bootstrap import Floats

__all__ = ["BYTES_PER_VALUE", "MAX_ERROR", "byte_range", "decode", "encode", "from_scores_file", "layout"]

_DTYPE = np.dtype("<u2")
_STEPS = 65535
BYTES_PER_VALUE = _DTYPE.itemsize
MAX_ERROR = 0.5 / _STEPS
"""The largest difference between a value in [0, 1] and its decoded quantization."""


def layout(scores: Scores) -> list[tuple[str, str]]:
    """The (group, metric) of each vector of the file, in file order."""
    groups: list[tuple[str, MetricSet]] = [(AVERAGE, scores)]
    groups += sorted(scores.per_category.items())
    return [
        (group, name)
        for group, metrics in groups
        for name in MetricSet.model_fields
        if metrics.metric(name) is not None
    ]


def encode(file: ScoresFile) -> bytes:
    """The replicates of `file`, packed; ValueError when a vector of the layout is missing or of another length."""
    resamples = file.scores.resamples
    vectors = []
    for group, metric in layout(file.scores):
        vector = file.replicates.get(group, {}).get(metric)
        if vector is None or len(vector) != resamples:
            found = "missing" if vector is None else f"{len(vector)} values"
            raise ValueError(f"the replicates of {metric} in {group} are {found}, not {resamples} values")
        vectors.append(_quantize(vector))
    return b"".join(vectors)


def byte_range(scores: Scores, group: str, metric: str) -> tuple[int, int] | None:
    """The bytes [start, end) of (group, metric)'s vector in the file; None when it was not computed (an unknown
    group included). An unknown metric is a ValueError."""
    wanted = (group, MetricSet.check(metric))
    size = scores.resamples * BYTES_PER_VALUE
    for index, placed in enumerate(layout(scores)):
        if placed == wanted:
            return index * size, (index + 1) * size
    return None


def decode(data: bytes) -> Floats:
    """A vector (or any run of them) back as float64 in [0, 1]."""
    return np.frombuffer(data, dtype=_DTYPE).astype(np.float64) / _STEPS


def from_scores_file(file: ScoresFile, group: str, metric: str) -> bytes | None:
    """(group, metric)'s vector read from scores.json, packed as the file packs it; None when absent."""
    vector = file.replicates.get(group, {}).get(MetricSet.check(metric))
    return None if vector is None else _quantize(vector)


def _quantize(vector: list[float]) -> bytes:
    steps = np.rint(np.clip(np.asarray(vector, dtype=np.float64), 0.0, 1.0) * _STEPS)
    return steps.astype(_DTYPE).tobytes()

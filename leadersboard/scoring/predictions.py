"""A job's predictions, read and checked before any metric is computed.

    <output>/predictions/scores.csv          header `image_id,score`; one row per test image; higher = more
                                             anomalous
    <output>/predictions/maps/<id>.npy       optional: a 2-D float16 or float32 array of any size, for every
                                             test image or for none; the scorer resizes it to the mask's
                                             size with Pillow's bilinear filter (leadersboard/scoring/pixels.py)

Every problem raises `BadPredictions` with a message the user can act on. Messages name only what the job
itself wrote or what its public index lists (ids, line numbers, shapes); never a label, a mask, or anything
else of the reference.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from leadersboard.keys import SCORES_CSV

__all__ = [
    "MAPS_DIR",
    "MAP_DTYPES",
    "MAP_SUFFIX",
    "MAX_MAP_BYTES",
    "MAX_SCORES_CSV_BYTES",
    "SCORES_HEADER",
    "BadPredictions",
    "load_map",
    "map_paths",
    "read_scores",
]

SCORES_HEADER = "image_id,score"
MAPS_DIR = "maps"
MAP_SUFFIX = ".npy"
MAP_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))
MAX_SCORES_CSV_BYTES = 8 * 1024**2
"""About 40 bytes a row: room for 200,000 test images (MVTec AD has 1,725, VisA 2,162)."""
MAX_MAP_BYTES = 16 * 1024**2 + 4096
"""A 2048x2048 float32 map and its .npy header."""
EXAMPLES = 5
"""How many ids a message quotes when some are missing, unknown or repeated."""
QUOTED_CHARS = 40


class BadPredictions(ValueError):
    """The predictions cannot be scored; the message says what to fix."""


def _quote(text: str) -> str:
    return repr(text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "...")


def _some(ids: Iterable[str]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(_quote(i) for i in ordered[:EXAMPLES])
    return shown + (", ..." if len(ordered) > EXAMPLES else "")


def _check_size(path: Path, limit: int, what: str) -> None:
    size = path.stat().st_size
    if size > limit:
        raise BadPredictions(f"{what} is {size} bytes, over the limit of {limit} bytes")


def _check_ids(found: Collection[str], expected: Collection[str], what: str) -> None:
    missing = set(expected) - set(found)
    unknown = set(found) - set(expected)
    if missing:
        raise BadPredictions(f"{what}: {len(missing)} test image ids missing, e.g. {_some(missing)}")
    if unknown:
        raise BadPredictions(f"{what}: {len(unknown)} ids not in the benchmark's test set, e.g. {_some(unknown)}")


def read_scores(path: Path, expected_ids: Collection[str]) -> dict[str, float]:
    """Image scores by id, exactly one finite number for each expected id."""
    where = f"predictions/{SCORES_CSV}"
    if not path.is_file():
        raise BadPredictions(f"{where} is missing: write one row `<image_id>,<score>` per test image")
    _check_size(path, MAX_SCORES_CSV_BYTES, where)
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise BadPredictions(f"{where} is not UTF-8 text") from None
    if not lines or lines[0].strip() != SCORES_HEADER:
        first = _quote(lines[0]) if lines else "nothing"
        raise BadPredictions(f"{where}: the first line must be {SCORES_HEADER!r}, found {first}")
    scores: dict[str, float] = {}
    repeated: Counter[str] = Counter()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        image_id, score = _parse_row(line, f"{where} line {number}")
        if image_id in scores:
            repeated[image_id] += 1
        scores[image_id] = score
    if repeated:
        raise BadPredictions(f"{where}: {len(repeated)} ids appear more than once, e.g. {_some(repeated)}")
    _check_ids(scores, expected_ids, where)
    return scores


def _parse_row(line: str, where: str) -> tuple[str, float]:
    fields = line.split(",")
    if len(fields) != 2:
        raise BadPredictions(f"{where}: expected 2 comma-separated fields `image_id,score`, found {len(fields)}")
    image_id, text = fields[0].strip(), fields[1].strip()
    try:
        score = float(text)
    except ValueError:
        raise BadPredictions(f"{where}: score {_quote(text)} is not a number") from None
    if not math.isfinite(score):
        raise BadPredictions(f"{where}: score {_quote(text)} is not finite")
    return image_id, score


def map_paths(maps_dir: Path, expected_ids: Collection[str]) -> dict[str, Path] | None:
    """The map file of every expected id, or None when the job wrote no maps (no directory, or an empty one).
    Maps for only some images are refused: the pixel metrics would silently cover a subset."""
    if not maps_dir.is_dir():
        return None
    entries = list(maps_dir.iterdir())
    if not entries:
        return None
    where = f"predictions/{MAPS_DIR}"
    strays = [entry.name for entry in entries if entry.suffix != MAP_SUFFIX or not entry.is_file()]
    if strays:
        raise BadPredictions(
            f"{where}: {len(strays)} entries are not `<image_id>{MAP_SUFFIX}` files, e.g. {_some(strays)}"
        )
    paths = {entry.stem: entry for entry in entries}
    _check_ids(paths, expected_ids, f"{where} (write a map for every test image, or none)")
    return paths


def load_map(path: Path) -> npt.NDArray[np.float32]:
    """One anomaly map as float32, checked: .npy without pickles, 2-D, float16/float32, non-empty, finite."""
    where = f"predictions/{MAPS_DIR}/{path.name}"
    _check_size(path, MAX_MAP_BYTES, where)
    try:  # the .npy reader itself: np.load would also open a zip (.npz) or a pickle
        with path.open("rb") as stream:
            array = np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BadPredictions(f"{where} is not a loadable .npy array ({type(error).__name__})") from None
    if array.dtype.newbyteorder("=") not in MAP_DTYPES:  # either byte order
        raise BadPredictions(f"{where} has dtype {array.dtype}, expected float16 or float32")
    if array.ndim != 2 or array.size == 0:
        raise BadPredictions(f"{where} has shape {array.shape}, expected a non-empty 2-D (height, width) array")
    if not np.isfinite(array).all():
        raise BadPredictions(f"{where} holds non-finite values (NaN or infinity)")
    return np.ascontiguousarray(array, dtype=np.float32)

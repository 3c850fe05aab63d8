"""Manifest and metrics.json parsing fuzzed with hypothesis: any input ends in a value or a precise reason."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.validate import InvalidSubmission, parse_manifest
from gpu_runner.results import BadMetrics, read_metrics
from leadersboard.keys import ManifestKey
from leadersboard.models.submission import Manifest

WHERE = ManifestKey(user="alice", submission_id="0123456789abcdef")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from([1, 2, "1"]),
        "submission_id": st.sampled_from([WHERE.submission_id, "x", ""]),
        "user": st.sampled_from(["alice", "bob", "Alice"]),
        "entrypoint": st.sampled_from(["main.py", "run.sh", "", "../main.py"]),
        "config": st.sampled_from(["config.yaml", "missing.yaml"]),
        "files": st.lists(
            st.fixed_dictionaries(
                {
                    "path": st.sampled_from(["main.py", "config.yaml", "../x", "/abs", "a//b"]),
                    "size": st.integers(-2, 10),
                }
            ),
            max_size=4,
        ),
        "created_at": st.sampled_from(["2026-11-27T00:00:00Z", "yesterday", 0]),
        "metadata": json_values,
    },
)


@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_give_a_reason_naming_what_is_invalid(raw: bytes) -> None:
    # Junk is never a manifest: these values cannot hold the six required fields (at most four keys), so every
    # one is refused with the schema's reason, the field named, never with another exception.
    reason = _parse(raw)
    assert isinstance(reason, str) and reason.startswith("manifest.json is not valid: "), reason


@given(manifest=manifest_like)
def test_manifest_shaped_input_gives_a_manifest_or_a_reason(manifest: dict) -> None:
    result = _parse(json.dumps(manifest).encode())
    if isinstance(result, Manifest):
        assert result.entrypoint in {f.path for f in result.files} and result.user == WHERE.user


def _parse(raw: bytes) -> Manifest | str:
    try:
        return parse_manifest(raw, WHERE)
    except InvalidSubmission as exc:
        assert str(exc).startswith(("manifest.json", "the entrypoint", "the config"))
        return str(exc)


metrics_like = st.fixed_dictionaries(
    {}, optional={"params": json_values, "metrics": st.dictionaries(st.text(max_size=8), json_values, max_size=4)}
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=200) | json_values.map(json.dumps) | metrics_like.map(json.dumps))
def test_any_metrics_file_gives_metrics_or_a_reason(tmp_path: Path, content: bytes | str) -> None:
    path = tmp_path / "metrics.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    try:
        metrics = read_metrics(tmp_path, max_bytes=1024 * 1024)
    except BadMetrics as exc:
        assert str(exc).startswith("metrics.json")
    else:
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.metrics.values())

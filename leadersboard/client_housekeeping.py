"""The client's calls for deletion, retention and storage usage: a part of `Client` (leadersboard/client.py).

>>> client.delete(sid)                                # your own finished submission (admins: anyone's)
>>> client.set_retention(submission_files_days=90)    # admins
>>> client.usage().users["alice"].blobs.bytes         # admins
"""

from __future__ import annotations

from typing import Any

import httpx

from leadersboard.models.housekeeping import DeletionReport, RetentionPolicy, SweepReport, UsageReport

__all__ = ["KEEP", "HousekeepingCalls"]

KEEP = 0
"""Given as a number of days to `set_retention`: keep for ever (the policy's None)."""


class HousekeepingCalls:
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        raise NotImplementedError  # Client's

    def delete(self, submission_id: str) -> DeletionReport:
        """Delete a finished submission: its files, results, MLflow run and record (its id then answers 404)."""
        return DeletionReport.model_validate(self._call("DELETE", f"/submissions/{submission_id}").json())

    def retention(self) -> RetentionPolicy:
        return RetentionPolicy.model_validate(self._call("GET", "/admin/retention").json())

    def set_retention(
        self, *, submission_files_days: int | None = None, results_days: int | None = None
    ) -> RetentionPolicy:
        """Change the policy; a number of days not given stays as it is, `KEEP` (0) keeps for ever."""
        current = self.retention()
        given = {"submission_files_days": submission_files_days, "results_days": results_days}
        body = {
            name: getattr(current, name) if days is None else (None if days == KEEP else days)
            for name, days in given.items()
        }
        return RetentionPolicy.model_validate(self._call("PUT", "/admin/retention", json=body).json())

    def sweep(self) -> SweepReport:
        """Apply the retention policy now (ingest also does every `retention_sweep_interval_s`)."""
        return SweepReport.model_validate(self._call("POST", "/admin/retention/sweep").json())

    def usage(self) -> UsageReport:
        """Storage per user: bytes and objects under `submissions/`, `blobs/` and `results/`."""
        return UsageReport.model_validate(self._call("GET", "/admin/usage").json())

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from leadersboard.settings import NatsSettings, S3Settings, SigningSettings

__all__ = ["DispatcherSettings"]


class DispatcherSettings(NatsSettings, S3Settings, SigningSettings):
    model_config = SettingsConfigDict(env_prefix="LB_DISPATCHER_")

    consumer_name: str = "dispatcher"
    ack_wait_s: float = 30.0
    fetch_batch: int = 64
    """Events fetched and handled concurrently at a time."""
    store_threads: int = 32
    fetch_timeout_s: float = 1.0
    max_manifest_bytes: int = 1024 * 1024
    queue_slots: int = 2
    """Released jobs that may wait in the work queue at once; more is faster to start, less is fairer."""
    runner_lost_after_s: float = 300.0
    """A running job whose runner has not heartbeaten for this long is failed with `runner lost`."""
    scoring_timeout_s: float = Field(default=3600.0, gt=0)
    """A benchmark job still waiting for its scores this long after its run ended is failed (the scorer is
    down or stuck): `scoring did not finish within N s`."""
    sweep_interval_s: float = 5.0
    recover_after_s: float = 30.0
    """A submission issued this long ago without a job is looked for in the store (its event may be lost)."""
    recover_interval_s: float = 10.0
    max_event_deliveries: int = Field(default=5, ge=1)
    """An event whose handling fails this many times in a way that is not an outage (a store 4xx, a record
    NATS refuses, a bug) ends its submission `failed` with the error: never an endless redelivery."""
    event_retry_delay_s: float = Field(default=2.0, gt=0)
    """Delay before an event that failed is delivered again; doubled on each delivery."""
    event_retry_max_delay_s: float = Field(default=60.0, gt=0)
    max_event_outage_s: float = Field(default=24 * 3600.0, gt=0)
    """An event still failing for an outage (store or NATS unreachable) this long after it was published ends
    its submission `failed` too."""
    view_load_timeout_s: float = Field(default=600.0, gt=0)
    """How long the first load of every job record may take at start (100,000 records took over 30 s here)
    before the dispatcher gives up and exits for its supervisor to start it again."""
    board_writes_in_flight: int = Field(default=256, ge=1, le=4096)
    """Leaderboard view entries written (or deleted) at once in a reconciliation or a rebuild (dispatcher/board.py)."""
    board_retry_delay_s: float = Field(default=2.0, gt=0)
    """After a failed write to the leaderboard view: the delay before the keeper reconciles."""
    burst: bool = False
    """Exit once the event stream is drained and nothing is left to release (tests, one-off catch-ups)."""

"""Container health checks for docker-compose.yml (copied into both images as /opt/leadersboard/healthcheck.py).

    python /opt/leadersboard/healthcheck.py http URL
        healthy when URL answers 2xx within 5 s (ingest, frontend, MLflow).
    python /opt/leadersboard/healthcheck.py nats SERVICE
        healthy when NATS answers with the settings SERVICE reads (`dispatcher`, `runner` or `scorer`:
        the LB_DISPATCHER_* / LB_RUNNER_* / LB_SCORER_* variables) and the stream it consumes exists
        (the events stream, the jobs stream, the scoring stream). A worker with no HTTP port is thereby
        checked for what it needs: the address, its NATS user and password, the topology. Only that
        stream: its NATS user may see nothing else.

Exit status 0 = healthy, 1 = unhealthy (the reason on stderr). Standard library plus what the
service itself imports; nothing here is used outside containers.
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request

from leadersboard.settings import NatsSettings

TIMEOUT_S = 5.0


def check_http(url: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        if not 200 <= response.status < 300:
            raise RuntimeError(f"{url} answered {response.status}")


def _settings(service: str) -> NatsSettings:
    if service == "dispatcher":
        from dispatcher.settings import DispatcherSettings

        return DispatcherSettings()
    if service == "runner":
        from gpu_runner.settings import RunnerSettings

        return RunnerSettings()
    if service == "scorer":
        from scorer.settings import ScorerSettings

        return ScorerSettings()
    raise SystemExit(f"unknown service {service!r}: expected dispatcher, runner or scorer")


def _consumed_stream(service: str, settings: NatsSettings) -> str:
    return {
        "dispatcher": settings.events_stream,
        "runner": settings.jobs_stream,
        "scorer": settings.scoring_stream,
    }[service]


async def check_nats(service: str) -> None:
    import nats

    from leadersboard.nats_permissions import inbox_prefix

    settings = _settings(service)
    password = settings.nats_password.get_secret_value() if settings.nats_password else None
    stream = _consumed_stream(service, settings)

    async def quiet(exc: Exception) -> None:  # the failure is reported once, below
        pass

    nc = await nats.connect(
        settings.nats_url,
        error_cb=quiet,
        user=settings.nats_user,
        password=password,
        inbox_prefix=inbox_prefix(settings.nats_user),
        name=f"{service}-healthcheck",
        allow_reconnect=False,
        max_reconnect_attempts=1,  # 0 would mean "forever" to nats-py
        connect_timeout=TIMEOUT_S,
    )
    try:
        js = nc.jetstream(timeout=TIMEOUT_S)
        await js.stream_info(stream)
    finally:
        await nc.close()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in {"http", "nats"}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[1] == "http":
            check_http(argv[2])
        else:
            asyncio.run(asyncio.wait_for(check_nats(argv[2]), 3 * TIMEOUT_S))
    except Exception as exc:
        print(f"unhealthy: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""How every service starts and stops: `python -m <service>` -> `main()` -> `serve(...)` -> `run(settings, stop=...)`.

The one home for what all services do alike. Logging is configured before anything can log. The settings
are read from the environment. SIGTERM and Ctrl-C only set the stop event: the service stops fetching,
finishes or hands back the work it holds and drains NATS, then `run` returns and the process exits 0. A start
the service refuses (a setting that does not parse, a missing sandbox, NATS refusing its credentials) is one
line, `refusing to start: ...`, and exit status 2, not a traceback; a crash keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable
from typing import NoReturn, Protocol, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsError

__all__ = ["REFUSED_EXIT_STATUS", "Service", "StartRefused", "serve"]

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
REFUSED_EXIT_STATUS = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

S = TypeVar("S", bound=BaseSettings)
S_contra = TypeVar("S_contra", bound=BaseSettings, contravariant=True)


class StartRefused(RuntimeError):
    """The service cannot run as it is configured; the message says what to change."""


class Service(Protocol[S_contra]):
    """A service's `run`: serve until `stop` is set, then stop cleanly and return."""

    def __call__(self, settings: S_contra, *, stop: asyncio.Event) -> Awaitable[None]: ...


def serve(name: str, settings_type: type[S], run: Service[S]) -> None:
    """Read the settings, run the service until SIGTERM or SIGINT, and log its end under the logger `name`."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    log = logging.getLogger(name)
    try:
        settings = settings_type()
    except (ValidationError, SettingsError) as exc:
        _refuse(log, _settings_problem(settings_type, exc))
    # A service with a `log_level` setting (the bridge's) is as verbose as asked.
    logging.getLogger().setLevel(str(getattr(settings, "log_level", "INFO")).upper())
    try:
        asyncio.run(_until_signalled(log, run, settings))
    except StartRefused as exc:
        _refuse(log, str(exc))
    log.info("%s stopped", name)


def _settings_problem(settings_type: type[BaseSettings], exc: ValidationError | SettingsError) -> str:
    """What is wrong with the environment, by variable name, on one line (the values are left out: secrets)."""
    if isinstance(exc, SettingsError):
        return f"invalid settings: {exc}"
    prefix = str(settings_type.model_config.get("env_prefix", ""))
    errors = exc.errors(include_url=False, include_input=False)
    return "invalid settings: " + "; ".join(_problem(prefix, error["loc"], error["msg"]) for error in errors)


def _problem(prefix: str, loc: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")  # what pydantic puts before a validator's own message
    if not loc:  # a rule across several settings: its message names them
        return message
    field, *inner = loc
    return f"{prefix}{field}".upper() + "".join(f"[{part}]" for part in inner) + f": {message}"


async def _until_signalled(log: logging.Logger, run: Service[S], settings: S) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, _ask_to_stop, log, stop, signum)
    await run(settings, stop=stop)


def _ask_to_stop(log: logging.Logger, stop: asyncio.Event, signum: int) -> None:
    if not stop.is_set():
        log.info("%s received: stopping", signal.Signals(signum).name)
    stop.set()


def _refuse(log: logging.Logger, reason: str) -> NoReturn:
    log.error("refusing to start: %s", reason)
    sys.exit(REFUSED_EXIT_STATUS)

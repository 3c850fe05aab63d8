"""Where the CLI finds the API and the token: flags, then `LEADERSBOARD_URL`/`LEADERSBOARD_TOKEN`, then the
config file that `leadersboard login` writes (`$XDG_CONFIG_HOME/leadersboard/config.json`, mode 0600). The
environment is read by tools/cli/settings.py only."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from leadersboard.client import Client
from tools.cli.failures import UsageError
from tools.cli.settings import ENV_PREFIX, CliSettings, cli_settings

__all__ = [
    "DEFAULT_URL",
    "Connection",
    "client_for",
    "config_path",
    "connection",
    "given_token",
    "load_config",
    "save_config",
]

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path(settings: CliSettings | None = None) -> Path:
    return (settings or cli_settings()).config_file


def load_config(settings: CliSettings | None = None) -> dict[str, str]:
    path = config_path(settings)
    try:
        loaded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not readable JSON ({exc}); run `leadersboard login` again") from exc
    return {k: str(v) for k, v in loaded.items() if k in ("url", "token")} if isinstance(loaded, dict) else {}


def save_config(url: str, token: str) -> Path:
    """Write the file readable by its owner only (created with mode 0600, never world-readable in between)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle, indent=2)
    temporary.replace(path)
    return path


@dataclass(frozen=True)
class Connection:
    url: str
    token: str
    token_source: str
    timeout_s: float
    cache_dir: Path


def given_token(args: argparse.Namespace, settings: CliSettings) -> tuple[str, str]:
    """(source, token) from --token, else LEADERSBOARD_TOKEN; ("", "") when neither is given."""
    if token := getattr(args, "token", None):
        return "--token", token
    if settings.token is not None:  # never empty: an empty variable counts as unset
        return f"{ENV_PREFIX}TOKEN", settings.token.get_secret_value()
    return "", ""


def connection(args: argparse.Namespace) -> Connection:
    settings = cli_settings()
    config = load_config(settings)
    url = getattr(args, "url", None) or settings.url or config.get("url") or DEFAULT_URL
    source, token = given_token(args, settings)
    if not token and config.get("token"):
        source, token = str(config_path(settings)), config["token"]
    return Connection(url.rstrip("/"), token, source, settings.timeout_s, settings.cache_dir)


def client_for(args: argparse.Namespace) -> Client:
    conn = connection(args)
    if not conn.token:
        raise UsageError(
            "no API token: run `leadersboard login`, pass --token or set LEADERSBOARD_TOKEN "
            "(ask an administrator for a token)"
        )
    workers = getattr(args, "workers", None) or 8
    return Client(conn.url, conn.token, timeout_s=conn.timeout_s, workers=workers, cache_dir=conn.cache_dir)

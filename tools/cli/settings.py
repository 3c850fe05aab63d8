from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.cli.failures import UsageError

__all__ = ["CliSettings", "cli_settings"]


class CliSettings(BaseSettings):
    """The `leadersboard` command's knobs (`LEADERSBOARD_*`; the URL and token: tools/cli/config.py)."""

    model_config = SettingsConfigDict(env_prefix="LEADERSBOARD_")

    timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long to wait for the API to connect and to answer each call."
    )


def cli_settings() -> CliSettings:
    """The settings, or a UsageError naming the variable that is wrong."""
    try:
        return CliSettings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = "LEADERSBOARD_" + "_".join(str(part) for part in problem["loc"]).upper()
        raise UsageError(f"{name}: {problem['msg']}") from exc

"""The `leadersboard` command's settings: the only place the CLI reads its environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.cli.failures import UsageError

__all__ = ["ENV_PREFIX", "CliSettings", "cli_settings"]

ENV_PREFIX = "LEADERSBOARD_"


class CliSettings(BaseSettings):
    """`LEADERSBOARD_*`, and the XDG base directories (unprefixed, as the XDG spec names them). Where the URL and
    token come from when flags, these and the saved login disagree: tools/cli/config.py."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

    url: str | None = Field(default=None, description="The API's address, unless --url is given.")
    token: SecretStr | None = Field(default=None, description="The API token, unless --token is given.")
    timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long to wait for the API to connect and to answer each call."
    )
    xdg_config_home: Path = Field(
        default_factory=lambda: Path.home() / ".config",
        validation_alias="XDG_CONFIG_HOME",
        description="Holds leadersboard/config.json, the saved login.",
    )
    xdg_cache_home: Path = Field(
        default_factory=lambda: Path.home() / ".cache",
        validation_alias="XDG_CACHE_HOME",
        description="Holds leadersboard/: the sha256 of uploaded files, a benchmark's parts until it is ready.",
    )

    @field_validator("url", "token", "xdg_config_home", "xdg_cache_home", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable counts as unset (the XDG spec says so for its directories; `VAR= cmd` unsets)."""
        if value == "":
            raise PydanticUseDefault()
        return value

    @property
    def cache_dir(self) -> Path:
        return self.xdg_cache_home / "leadersboard"

    @property
    def config_file(self) -> Path:
        return self.xdg_config_home / "leadersboard" / "config.json"


def cli_settings() -> CliSettings:
    """The settings, or a UsageError naming the variable that is wrong."""
    try:
        return CliSettings()
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = "_".join(str(part) for part in problem["loc"])
        name = ENV_PREFIX + field.upper() if field in CliSettings.model_fields else field  # else: an alias (XDG_*)
        raise UsageError(f"{name}: {problem['msg']}") from exc

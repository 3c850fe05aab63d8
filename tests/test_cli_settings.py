"""The CLI's settings (tools/cli/settings.py), through real runs of `leadersboard`: the API address and token come
from the flags, else LEADERSBOARD_URL/LEADERSBOARD_TOKEN, else the saved login; the saved login and the hash cache
live under the XDG directories (their usual defaults under $HOME when unset or empty); a bad value is one line
naming the variable, exit 2, never a traceback.

Each API here is a real aiohttp server that refuses every call with a 404 naming itself and the bearer it was
sent, so the CLI's one-line error shows which address and which token it used."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.test_client_failures import one_line, serving

CLI = str(Path(sys.executable).parent / "leadersboard")
SID = "01J00000000000000000000000"


def naming(name: str) -> web.Application:
    """An API that answers `GET /me` for `login`, and refuses anything else with a 404 saying who saw what."""

    async def me(request: web.Request) -> web.Response:
        return web.json_response({"user": name, "role": "user", "token_id": "t1", "expires_at": None})

    async def refuse(request: web.Request) -> web.Response:
        seen = f"{name} saw {request.headers.get('Authorization', 'no token')}"
        return web.json_response({"error": {"code": "not_found", "message": seen}}, status=404)

    app = web.Application()
    app.router.add_get("/api/v1/me", me)
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


@pytest.fixture
async def apis() -> AsyncIterator[dict[str, str]]:
    """Three APIs: the one named by --url, by LEADERSBOARD_URL, and in the saved login."""
    async with serving(naming("flag")) as flag, serving(naming("env")) as env, serving(naming("saved")) as saved:
        yield {"flag": flag, "env": env, "saved": saved}


async def leadersboard(*args: str, env: dict[str, str], stdin: str = "") -> tuple[int, str, str]:
    """The CLI with only `env` set among LEADERSBOARD_* and XDG_*; HOME too when given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LEADERSBOARD_", "XDG_"))}
    process = await asyncio.create_subprocess_exec(
        CLI, *args, env=base | {"COLUMNS": "200"} | env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def saved_login(config_home: Path, url: str, token: str) -> Path:
    path = config_home / "leadersboard" / "config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"url": url, "token": token}))
    return path


async def test_flags_beat_the_environment_which_beats_the_saved_login(apis: dict[str, str], tmp_path: Path) -> None:
    saved_login(tmp_path / "config", apis["saved"], "saved-token")
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env = {"LEADERSBOARD_URL": apis["env"], "LEADERSBOARD_TOKEN": "env-token"}
    flags = ["--url", apis["flag"], "--token", "flag-token"]

    async def seen(*extra: str, given: dict[str, str]) -> str:
        line = one_line(await leadersboard("show", SID, *extra, env=xdg | given))
        return line.split("(not_found): ", 1)[1]

    assert await seen(given={}) == "saved saw Bearer saved-token"
    assert await seen(given=env) == "env saw Bearer env-token"
    assert await seen(*flags, given=env) == "flag saw Bearer flag-token"
    # Each of the two is chosen on its own.
    assert await seen("--token", "flag-token", given=env) == "env saw Bearer flag-token"
    assert await seen("--url", apis["flag"], given=env) == "flag saw Bearer env-token"
    assert await seen(given={"LEADERSBOARD_TOKEN": "env-token"}) == "saved saw Bearer env-token"
    assert await seen(given={"LEADERSBOARD_URL": apis["env"]}) == "env saw Bearer saved-token"
    # An empty variable counts as unset.
    assert await seen(given={"LEADERSBOARD_URL": "", "LEADERSBOARD_TOKEN": ""}) == "saved saw Bearer saved-token"


async def test_login_saves_under_xdg_config_home_or_its_default_and_prefers_the_flag(
    apis: dict[str, str], tmp_path: Path
) -> None:
    config_home = tmp_path / "config"
    env = {"LEADERSBOARD_URL": apis["env"], "LEADERSBOARD_TOKEN": "env-token", "XDG_CONFIG_HOME": str(config_home)}
    code, _, stderr = await leadersboard("login", env=env)
    assert code == 0, stderr
    path = config_home / "leadersboard" / "config.json"
    assert json.loads(path.read_text()) == {"url": apis["env"], "token": "env-token"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    code, _, stderr = await leadersboard("login", "--token", "flag-token", env=env)
    assert code == 0, stderr
    assert json.loads(path.read_text())["token"] == "flag-token"

    # Without the variable (or with it empty): ~/.config; the token read from stdin when neither flag nor variable.
    home = tmp_path / "home"
    for unset in ({"HOME": str(home)}, {"HOME": str(home), "XDG_CONFIG_HOME": ""}):
        code, _, stderr = await leadersboard("login", "--url", apis["saved"], env=unset, stdin="piped-token\n")
        assert code == 0, stderr
        default = home / ".config" / "leadersboard" / "config.json"
        assert json.loads(default.read_text()) == {"url": apis["saved"], "token": "piped-token"}
        code, _, stderr = await leadersboard("logout", env=unset)
        assert (code, default.exists()) == (0, False), stderr


async def test_submit_keeps_its_hashes_under_xdg_cache_home_or_its_default(
    apis: dict[str, str], tmp_path: Path
) -> None:
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "main.py").write_text("print('hi')\n")
    (submission / "config.yaml").write_text("{}\n")
    with zipfile.ZipFile(submission / "data.zip", "w") as archive:  # a zip is always hashed
        archive.writestr("a.txt", "a")
    api = {"LEADERSBOARD_URL": apis["env"], "LEADERSBOARD_TOKEN": "t"}
    home = tmp_path / "home"
    for env, cache in (
        ({"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(home)}, tmp_path / "cache"),
        ({"XDG_CACHE_HOME": "", "HOME": str(home)}, home / ".cache"),
    ):
        # The API refuses the submission, after the CLI hashed the zip (its progress bar above the error).
        code, _, stderr = await leadersboard("submit", str(submission), env=api | env)
        assert (code, stderr.splitlines()[-1]) == (2, "error 404 (not_found): env saw Bearer t"), stderr
        cached = json.loads((cache / "leadersboard" / "sha256.json").read_text())
        assert [Path(name).name for name in cached] == ["data.zip"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("soon", "valid number"), ("0", "greater than 0"), ("86400", "less than or equal to 3600")],
)
async def test_a_bad_timeout_is_one_line_naming_the_variable(
    apis: dict[str, str], tmp_path: Path, value: str, expected: str
) -> None:
    env = {"LEADERSBOARD_URL": apis["env"], "LEADERSBOARD_TOKEN": "t", "LEADERSBOARD_TIMEOUT_S": value}
    line = one_line(await leadersboard("jobs", env=env | {"XDG_CONFIG_HOME": str(tmp_path / "config")}))
    assert line.startswith("error: LEADERSBOARD_TIMEOUT_S: ") and expected in line, line

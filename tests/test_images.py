"""The Dockerfiles in infra/ copy what exists, install their extra and never the local stack's binaries;
the compose services build from them and run the health check they copy in."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.compose_fixtures import ROOT, RUNNER_SERVICE, THIRD_PARTY, settings_class


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")]
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, c) for c in candidates for p in prefixes):
            result = not negate
    return result


def copied_into_image(path: Path) -> dict[str, str]:
    """Image path -> build-context source, for every COPY (WORKDIR-relative destinations resolved)."""
    workdir, copied = PurePosixPath("/"), {}
    for keyword, rest in dockerfile_instructions(path):
        if keyword == "WORKDIR":
            workdir = workdir / rest
        elif keyword == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            *sources, destination = words
            target = workdir / destination
            for source in sources:
                name = PurePosixPath(source).name
                image_path = target / name if destination.endswith("/") or len(sources) > 1 else target
                copied[str(image_path)] = source
    return copied


@pytest.mark.parametrize(
    ("dockerfile", "extra"), [("infra/Dockerfile", "frontend"), ("infra/Dockerfile.runner", "runner")]
)
def test_dockerfiles_copy_what_exists_and_install_their_extra(dockerfile: str, extra: str) -> None:
    path = ROOT / dockerfile
    patterns = dockerignore_patterns()
    copied = copied_into_image(path)
    assert copied
    for source in copied.values():
        assert (ROOT / source).exists(), f"{dockerfile}: COPY {source}: no such file in the build context"
        assert not ignored(source, patterns), f"{dockerfile}: COPY {source} is excluded by .dockerignore"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    sources = set(copied.values())
    missing = packages - sources
    assert not missing, f"{dockerfile} does not copy the packages {sorted(missing)}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= sources
    assert "/opt/leadersboard/healthcheck.py" in copied, "the compose health checks run this path"
    runs = " ".join(rest for keyword, rest in dockerfile_instructions(path) if keyword == "RUN")
    assert f'pip install ".[{extra}]"' in runs
    assert f"['optional-dependencies']['{extra}']" in runs, "the dependency layer installs the same extra"
    assert extra in pyproject["project"]["optional-dependencies"]
    installed_extras = {e for group in re.findall(r"\.\[([^\]]*)\]", runs) for e in group.split(",")}
    assert "local" not in installed_extras, "the local stack's binaries stay out of production images"
    base = next(rest for keyword, rest in dockerfile_instructions(path) if keyword == "FROM")
    if extra == "runner":
        arg = next(rest for keyword, rest in dockerfile_instructions(path) if keyword == "ARG")
        assert base == "${CUDA_IMAGE}" and arg.startswith("CUDA_IMAGE=nvidia/cuda:")
        assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runs), "the job sandbox"
        assert re.search(r"apt-get install [^&]*\butil-linux\b", runs), "prlimit and setpriv for the sandbox"
        assert "python3.11" in runs
    else:
        assert base.startswith("python:3.11-slim")
    for pattern in [".venv", ".leadersboard", "**/*.zip"]:
        assert pattern in patterns, f".dockerignore should exclude {pattern}"


def test_compose_builds_from_infra(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if name in THIRD_PARTY - {"mlflow"}:
            assert "build" not in service, name
            continue
        build = service["build"]
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file()
        expected = "infra/Dockerfile.runner" if RUNNER_SERVICE.match(name) else "infra/Dockerfile"
        assert build["dockerfile"] == expected, name
        for word in (service.get("healthcheck") or {}).get("test", []):
            if word.endswith("healthcheck.py"):
                assert word in copied_into_image(ROOT / expected), f"{name}: {word} is not in its image"


def test_healthcheck_script_knows_the_services_it_is_used_for(services: dict[str, Any]) -> None:
    script = (ROOT / "infra" / "healthcheck.py").read_text()
    ast.parse(script)
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test", [])
        if any(str(word).endswith("healthcheck.py") for word in test):
            mode, argument = test[-2], test[-1]
            assert mode in {"http", "nats"}
            if mode == "nats":
                cls = settings_class(name)
                assert cls is not None and f"{cls.__name__}()" in script
                assert argument in name

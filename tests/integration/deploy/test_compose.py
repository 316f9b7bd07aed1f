"""deploy/compose.yaml with the real tools that need no Docker engine: the compose-spec schema
(check-jsonschema), Docker Compose v2 itself (`config` resolves every profile), zhiwen's settings and CLI,
and the health checks it declares run against live servers here."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from deploy_kit import (
    DEPLOY,
    ROOT,
    compose_binary,
    free_port,
    healthcheck_argv,
    image_extras,
    known_variables,
    load_yaml,
    parse_zhiwen_command,
    require_tool,
)

if TYPE_CHECKING:
    from conftest import Live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

COMPOSE = DEPLOY / "compose.yaml"
PROFILES = ("cpu", "gpu", "gpu-r1", "scale", "scale-milvus", "observe")
# What a user sets in deploy/.env (placeholders for the test; none are secrets).
ENV = {"ZHIWEN_API_KEYS": "zw_placeholder_for_tests", "POSTGRES_PASSWORD": "placeholder"}


def compose_config(*profiles: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [compose_binary(), "-f", str(COMPOSE), "--project-directory", str(DEPLOY)]
    for profile in profiles:
        args += ["--profile", profile]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIWEN_", "OTEL_", "COMPOSE_"))}
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env=clean | (ENV if env is None else env), cwd=DEPLOY)  # fmt: skip


def resolved(*profiles: str) -> dict[str, Any]:
    result = compose_config(*profiles)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def zhiwen_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in config["services"].items() if "zhiwen" in str(s.get("image", ""))}


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("check-jsonschema", "pip install -e '.[dev]'")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def test_the_file_validates_against_the_compose_spec_schema(tmp_path: Path) -> None:
    ok = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["proxy"]["healthcheck"]["retry"] = 3  # a misspelt key
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    bad = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(tmp_path / "compose.yaml"))
    assert bad.returncode == 1 and "retry" in bad.stdout, bad.stdout


@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_resolves_each_profile(profile: str) -> None:
    config = resolved(profile)
    services = config["services"]
    assert services, profile
    for name, service in services.items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} waits for {dependency}, which {profile} does not start"
            if "healthcheck" in services[dependency]:
                assert how["condition"] == "service_healthy", (name, dependency)
    for name, service in zhiwen_services(config).items():
        env = service["environment"]
        assert env["ZHIWEN_API_KEYS"] == ENV["ZHIWEN_API_KEYS"], name
        assert env["ZHIWEN_HOME"] == "/data" and any(v["target"] == "/data" for v in service["volumes"]), name
        assert "/ready" in " ".join(service["healthcheck"]["test"]), name
        assert "zhiwen" in service["networks"]["default"]["aliases"], f"{name}: Prometheus finds it by alias"


def test_without_api_keys_compose_refuses_to_start_anything() -> None:
    result = compose_config("cpu", env={})
    assert result.returncode != 0 and "ZHIWEN_API_KEYS" in result.stderr


def test_the_profiles_wire_zhiwen_to_its_model_stores_and_collector() -> None:
    gpu, r1, scale, observe = resolved("gpu"), resolved("gpu-r1"), resolved("scale"), resolved("observe")
    vllm = gpu["services"]["vllm"]
    assert "--model=Qwen/Qwen2.5-7B-Instruct" in vllm["command"]
    served = next(a.split("=", 1)[1] for a in vllm["command"] if a.startswith("--served-model-name="))
    assert gpu["services"]["zhiwen-gpu"]["environment"]["ZHIWEN_LLM_MODEL"] == served
    assert gpu["services"]["zhiwen-gpu"]["environment"]["ZHIWEN_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    reasoning = r1["services"]["vllm-r1"]["command"]
    assert "--reasoning-parser=deepseek_r1" in reasoning and any(
        "DeepSeek-R1-Distill" in a for a in reasoning
    )
    assert r1["services"]["zhiwen-r1"]["environment"]["ZHIWEN_LLM_BASE_URL"] == "http://vllm-r1:8000/v1"
    replicas = zhiwen_services(scale)
    assert sorted(replicas) == ["zhiwen-1", "zhiwen-2"]
    for service in replicas.values():
        env = service["environment"]
        assert env["ZHIWEN_DATABASE_URL"].startswith("postgresql://zhiwen:placeholder@postgres:5432/")
        assert env["ZHIWEN_CHROMA_URL"] == "http://chroma:8000"
        assert [v["source"] for v in service["volumes"]] == ["zhiwen-shared"], "one ZHIWEN_HOME for both"
    chroma = re.search(r'"chromadb==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert chroma and scale["services"]["chroma"]["image"] == f"chromadb/chroma:{chroma.group(1)}"
    assert scale["services"]["proxy"]["volumes"][0]["target"] == "/etc/nginx/conf.d/default.conf"
    # observe: Prometheus gets the config and rules under test, Grafana the dashboard its provider loads
    mounts = {v["target"]: Path(v["source"]) for s in observe["services"].values() for v in s.get("volumes", [])
              if v["type"] == "bind"}  # fmt: skip
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus" / "prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == DEPLOY / "prometheus" / "alerts.yml"
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "zhiwen.yml")["providers"][0]
    assert mounts[provider["options"]["path"] + "/zhiwen.json"] == DEPLOY / "grafana" / "zhiwen.json"
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[
        "datasources"
    ][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"
    collector = load_yaml(DEPLOY / "otel" / "collector.yaml")
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    for service in zhiwen_services(scale).values():
        assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otel-collector:{http}"
    for pipeline in collector["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline[kind]) <= set(collector[kind]), f"the pipeline names an undefined {kind[:-1]}"
    assert collector["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0] in observe["services"]


def test_scale_milvus_replicas_share_no_volume_and_keep_everything_in_postgres_and_milvus() -> None:
    from zhiwen.retrieval.milvus import check_uri
    from zhiwen.settings import Settings

    config = resolved("scale-milvus")
    services = config["services"]
    replicas = zhiwen_services(config)
    assert sorted(replicas) == ["zhiwen-milvus-1", "zhiwen-milvus-2"]
    assert sorted(services) == sorted([*replicas, "postgres", "milvus", "vllm", "proxy-milvus"]), "no Chroma"
    postgres = services["postgres"]["environment"]
    database = f"postgresql://{postgres['POSTGRES_USER']}:placeholder@postgres:5432/{postgres['POSTGRES_DB']}"
    for name, service in replicas.items():
        env = service["environment"]
        assert env["ZHIWEN_DATABASE_URL"] == database, name
        assert env["ZHIWEN_MILVUS_URI"] == "http://milvus:19530", name
        assert not [var for var in env if var.startswith("ZHIWEN_CHROMA")], name
        settings = Settings(database_url=env["ZHIWEN_DATABASE_URL"], milvus_uri=env["ZHIWEN_MILVUS_URI"])
        assert settings.milvus_uri and check_uri(settings.milvus_uri) == "http://milvus:19530"
        for store in ("postgres", "milvus"):
            assert service["depends_on"][store]["condition"] == "service_healthy", (name, store)
            assert services[store]["healthcheck"]["test"], store
        # its own named volume at /data (uploads waiting to be ingested, caches): no bind, nobody else's
        assert [(v["type"], v["target"]) for v in service["volumes"]] == [("volume", "/data")], name
        mine = {v["source"] for v in service["volumes"]}
        others = {v["source"] for other, s in services.items() if other != name for v in s.get("volumes", [])}
        assert not mine & others, f"{name} shares {mine & others}"
        assert "zhiwen-shared" not in mine
    hostnames = [service["hostname"] for service in replicas.values()]
    assert len(set(hostnames)) == 2, "each replica tells its own ingest jobs by its (fixed) host name"


def test_the_milvus_server_runs_standalone_with_embedded_etcd_and_local_storage() -> None:
    milvus = resolved("scale-milvus")["services"]["milvus"]
    assert re.fullmatch(r"milvusdb/milvus:v2\.5\.\d+", milvus["image"]), milvus["image"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    env = milvus["environment"]
    assert env["ETCD_USE_EMBED"] == "true" and env["COMMON_STORAGETYPE"] == "local"
    mounts = {v["target"]: v for v in milvus["volumes"]}
    etcd = mounts[env["ETCD_CONFIG_PATH"]]
    assert (
        etcd["type"] == "bind"
        and etcd["read_only"]
        and Path(etcd["source"]) == DEPLOY / "milvus" / "embedEtcd.yaml"
    )
    assert set(load_yaml(Path(etcd["source"]))) == {"listen-client-urls", "advertise-client-urls",
                                                    "quota-backend-bytes", "auto-compaction-mode",
                                                    "auto-compaction-retention"}  # fmt: skip
    user = mounts["/milvus/configs/user.yaml"]
    assert user["type"] == "bind" and Path(user["source"]) == DEPLOY / "milvus" / "user.yaml"
    overrides = load_yaml(Path(user["source"]))
    assert overrides is None or isinstance(overrides, dict), (
        "user.yaml overrides milvus.yaml: a mapping or nothing"
    )
    data = mounts["/var/lib/milvus"]  # etcd's metadata and the segments survive a restart
    assert data["type"] == "volume" and env["ETCD_DATA_DIR"].startswith("/var/lib/milvus/")
    check = milvus["healthcheck"]
    assert check["test"] == ["CMD", "curl", "-f", "http://localhost:9091/healthz"]
    assert check["start_period"] and check["retries"] >= 3
    assert "ports" not in milvus, "Milvus answers inside the project's network only"


@pytest.mark.parametrize(("profile", "proxy"), [("scale", "proxy"), ("scale-milvus", "proxy-milvus")])
def test_the_proxy_reaches_every_replica_of_its_profile_by_the_names_in_nginx_conf(
    profile: str, proxy: str
) -> None:
    config = resolved(profile)
    services = config["services"]
    conf = next(Path(v["source"]) for v in services[proxy]["volumes"]
                if v["target"] == "/etc/nginx/conf.d/default.conf")  # fmt: skip
    assert conf == DEPLOY / "proxy" / "nginx.conf"
    upstreams = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", conf.read_text(), re.M)
    assert upstreams
    answers: dict[str, set[str]] = {}  # a name on the network -> the services answering to it
    for name, service in services.items():
        aliases = ((service.get("networks") or {}).get("default") or {}).get("aliases") or []
        for dns in {name, *aliases}:
            answers.setdefault(dns, set()).add(name)
    replicas = zhiwen_services(config)
    reached = set()
    for host, port in upstreams:
        assert len(answers.get(host, ())) == 1, (
            f"{profile}: nginx's {host} is not one service: {answers.get(host)}"
        )
        (replica,) = answers[host]
        assert replica in replicas and parse_zhiwen_command(replicas[replica]["command"])["port"] == int(port)
        reached.add(replica)
    assert reached == set(replicas), f"{profile}: nginx sends nothing to {set(replicas) - reached}"
    assert {d: c["condition"] for d, c in services[proxy]["depends_on"].items()} == dict.fromkeys(
        replicas, "service_healthy"
    )
    assert services[proxy]["ports"][0]["published"] == "8000"


def test_no_secret_is_written_in_the_file_and_each_comes_from_the_environment() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    secret = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEY")
    for name, service in raw["services"].items():
        for var, value in (service.get("environment") or {}).items():
            if secret.search(var):
                assert value == "" or str(value).startswith("${"), (name, var)
            credentials = re.search(r"://[^/:@]+:([^@]*)@", str(value))
            if credentials:
                assert credentials.group(1).startswith("${"), (name, var)
    password = "from-the-environment-only"
    config = compose_config("scale-milvus", env=ENV | {"POSTGRES_PASSWORD": password})
    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    for service in zhiwen_services({"services": services}).values():
        assert f":{password}@postgres:" in service["environment"]["ZHIWEN_DATABASE_URL"]
        assert service["environment"]["ZHIWEN_API_KEYS"] == ENV["ZHIWEN_API_KEYS"]


def test_each_zhiwen_image_holds_the_clients_of_the_stores_its_service_is_given() -> None:
    config = resolved(*PROFILES)
    needs = {
        "ZHIWEN_DATABASE_URL": "postgres",
        "ZHIWEN_MILVUS_URI": "milvus",
        "ZHIWEN_CHECKPOINT_URL": "postgres",
    }
    checked = set()
    for name, service in zhiwen_services(config).items():
        installed = image_extras(service["build"]["target"])
        for var, extra in needs.items():
            if var in service["environment"]:
                assert extra in installed, f"{name} sets {var}: its image needs zhiwen[{extra}]"
                checked.add(var)
    assert checked == {"ZHIWEN_DATABASE_URL", "ZHIWEN_MILVUS_URI"}


def test_every_zhiwen_and_otel_variable_set_is_one_zhiwen_reads() -> None:
    known = known_variables()
    assert {"ZHIWEN_API_KEYS", "ZHIWEN_CHROMA_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= known  # both kinds read
    config = resolved(*PROFILES)
    set_here = {
        (name, var)
        for name, service in config["services"].items()
        for var in service.get("environment") or {}
        if var.startswith(("ZHIWEN_", "OTEL_"))
    }
    example = re.findall(r"^#?\s*((?:ZHIWEN|OTEL)_[A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(), re.M)
    set_here |= {("env.example", var) for var in example}
    assert len(set_here) > 30
    unknown = sorted((where, var) for where, var in set_here if var not in known)
    assert not unknown, f"variables zhiwen does not read: {unknown}"


def test_every_command_parses_with_zhiwens_cli() -> None:
    config = resolved(*PROFILES)
    for name, service in zhiwen_services(config).items():
        params = parse_zhiwen_command(service["command"])
        assert params["host"] == "0.0.0.0", name
        published = [p["target"] for p in service.get("ports", [])]
        assert published in ([], [params["port"]]), name
        assert f"127.0.0.1:{params['port']}/ready" in service["healthcheck"]["test"][3], name


def test_the_declared_health_checks_pass_against_live_servers(live: Live) -> None:
    config = resolved("cpu", "gpu")
    zhiwen_port = int(live.url.rsplit(":", 1)[1])
    upstream_port = int(live.upstream.rsplit(":", 1)[1].split("/")[0])
    for name, port in (("zhiwen-cpu", zhiwen_port), ("zhiwen-gpu", zhiwen_port), ("vllm", upstream_port)):
        test = config["services"][name]["healthcheck"]["test"]
        up = subprocess.run(healthcheck_argv(test, port), capture_output=True, timeout=30)
        assert up.returncode == 0, (name, up.stderr)
        down = subprocess.run(healthcheck_argv(test, free_port()), capture_output=True, timeout=30)
        assert down.returncode != 0, name

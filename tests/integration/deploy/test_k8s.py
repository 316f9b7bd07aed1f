"""deploy/k8s: each manifest validates with check-jsonschema against Kubernetes' strict schema of its kind
(from the kubernetes-validate package: no network here), and the manifests agree with zhiwen and each other."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_kit import (
    DEPLOY,
    K8S_VERSION,
    k8s_manifests,
    k8s_schema,
    known_variables,
    parse_zhiwen_command,
    require_tool,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KINDS = {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Ingress", "PersistentVolumeClaim"}


def validate(manifest: Path, kind: str, api_version: str, schemas: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("check-jsonschema", "pip install -e '.[dev]'")
    schema = schemas / f"{kind}.json"
    if not schema.exists():
        schema.write_text(json.dumps(k8s_schema(kind, api_version)))
    return subprocess.run([binary, "--schemafile", str(schema), str(manifest)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def by_kind() -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in k8s_manifests().values()}


def test_every_manifest_validates_against_its_strict_schema(tmp_path: Path) -> None:
    manifests = k8s_manifests()
    assert {m["kind"] for m in manifests.values()} == KINDS
    for name, manifest in manifests.items():
        result = validate(DEPLOY / "k8s" / name, manifest["kind"], manifest["apiVersion"], tmp_path)
        assert result.returncode == 0, f"{name} (Kubernetes {K8S_VERSION}): {result.stdout}{result.stderr}"


def test_the_strict_schema_refuses_a_misspelt_field(tmp_path: Path) -> None:
    deployment = by_kind()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {
        "httpGet": {"path": "/ready"}
    }
    bad = tmp_path / "deployment.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    result = validate(bad, "Deployment", "apps/v1", tmp_path)
    assert result.returncode == 1 and "readinessprobe" in result.stdout, result.stdout


def test_probes_resources_and_the_command_match_zhiwen() -> None:
    deployment = by_kind()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    params = parse_zhiwen_command(container["command"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert params["host"] == "0.0.0.0" and ports["http"] == params["port"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/live"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert (
        deployment["spec"]["replicas"] >= 2
        and deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    )
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "data")
    assert mounts["data"] == by_kind()["ConfigMap"]["data"]["ZHIWEN_HOME"]
    assert claim == by_kind()["PersistentVolumeClaim"]["metadata"]["name"]
    assert by_kind()["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"], (
        "replicas share kbs/"
    )


def test_secrets_come_from_a_secret_and_every_variable_is_one_zhiwen_reads() -> None:
    known = known_variables()
    (container,) = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"]
    config_map = by_kind()["ConfigMap"]
    assert [s["configMapRef"]["name"] for s in container["envFrom"]] == [config_map["metadata"]["name"]]
    variables = set(config_map["data"]) | {e["name"] for e in container["env"]}
    unknown = sorted(v for v in variables if v.startswith(("ZHIWEN_", "OTEL_")) and v not in known)
    assert not unknown, f"variables zhiwen does not read: {unknown}"
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {"ZHIWEN_API_KEYS", "ZHIWEN_DATABASE_URL"} <= set(secret_refs)
    assert not {"ZHIWEN_API_KEYS", "ZHIWEN_DATABASE_URL", "ZHIWEN_LLM_API_KEY"} & set(config_map["data"])


def test_service_pdb_and_ingress_select_the_deployment_and_the_ingress_passes_sse() -> None:
    kinds = by_kind()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] < kinds["Deployment"]["spec"]["replicas"]
    service_port = kinds["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] == "http"
    backend = kinds["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": kinds["Service"]["metadata"]["name"], "port": {"name": service_port["name"]}}
    annotations = kinds["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
    assert kinds["Ingress"]["spec"]["ingressClassName"] == "nginx"

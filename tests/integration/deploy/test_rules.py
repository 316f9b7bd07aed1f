"""promtool on deploy/prometheus: the config and rules check, the rules' unit tests pass, and each alert's
unit tests would notice that alert never firing (its expression replaced by one that cannot fire)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_kit import DEPLOY, load_yaml, require_tool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PROM = DEPLOY / "prometheus"
TEST_FILES = sorted(PROM.glob("alerts_test*.yml"))
HOW = "Debian package `prometheus`; scripts/test.sh installs it as root"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool", HOW), *args], capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(PROM / "alerts.yml")["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_config_and_the_rules() -> None:
    rules = promtool("check", "rules", str(PROM / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert (
        f"SUCCESS: {sum(len(g['rules']) for g in load_yaml(PROM / 'alerts.yml')['groups'])} rules"
        in rules.stdout
    )
    config = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_the_rules_unit_tests_pass() -> None:
    assert [p.name for p in TEST_FILES] == ["alerts_test.yml", "alerts_test_weekly.yml"]
    result = promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES), result.stdout


def test_every_alert_is_unit_tested_firing_and_labelled_for_routing() -> None:
    tests = [test for path in TEST_FILES for test in load_yaml(path)["tests"]]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    for rule in alert_rules():
        assert rule["alert"] in fired, f"{rule['alert']}: no unit test expects it to fire"
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]


@pytest.mark.parametrize("alert", [r["alert"] for r in alert_rules()])
def test_the_unit_tests_fail_when_an_alert_can_never_fire(alert: str, tmp_path: Path) -> None:
    config = load_yaml(PROM / "alerts.yml")
    for group in config["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = "vector(1) == 0"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(config))
    copies = []
    for path in TEST_FILES:  # only the files that test this alert (the weekly one takes seconds)
        if f"alertname: {alert}\n" in path.read_text():
            copies.append(tmp_path / path.name)
            copies[-1].write_text(path.read_text())
    result = promtool("test", "rules", *map(str, copies))
    assert result.returncode != 0, f"the unit tests pass with {alert} disabled"
    assert alert in result.stdout + result.stderr

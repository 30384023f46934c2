"""deploy/ validated offline (no Docker or cluster here): the Compose file against the Compose
specification's JSON schema, the Kubernetes manifests against the Kubernetes schemas, the alert
rules and Prometheus's configuration with Prometheus's own `promtool` (and the rules' unit
tests), the Grafana dashboard's queries parsed as PromQL, the Dockerfile's promises read."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
import yaml

from tests.monitoring import ALERTS, DASHBOARD, MONITORING, alert_queries, dashboard_queries
from yuqing.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.31.0"
YUQING_SERVICES = ("worker", "api", "smtp-intake")


def compose_schema() -> dict[str, Any]:
    # The Compose specification's schema, as vendored (and kept current) by check-jsonschema.
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendored.joinpath("compose-spec.json").read_text())
    return schema


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [error.message for error in validator.iter_errors(compose())] == []
    # The schema does refuse a wrong file (so the check above means something).
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["restart"] = ["always"]
    broken["services"]["api"]["replicas_by_magic"] = 3
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_stack_has_every_part_and_pins_its_images() -> None:
    services = compose()["services"]
    assert {
        "temporal-db",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "temporal-ui",
        "yuqing-db",
        *YUQING_SERVICES,
        "prometheus",
        "grafana",
    } <= set(services)
    for name, service in services.items():
        image = service["image"]
        tag = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", image).rsplit(":", 1)
        assert len(tag) == 2 and tag[1] not in ("", "latest"), f"{name}: {image} is not pinned"
    for name in YUQING_SERVICES:
        service = services[name]
        assert service["build"] == {"context": "../..", "dockerfile": "Dockerfile"}
        assert service["healthcheck"]["test"], name
        assert "/health/ready" in " ".join(service["healthcheck"]["test"])
    # The schema is a one-off job the server waits for; the namespace (with its retention)
    # is one too, which the service's processes wait for.
    assert services["temporal-schema"]["restart"] == "no"
    assert services["temporal"]["depends_on"]["temporal-schema"] == {
        "condition": "service_completed_successfully"
    }
    assert services["temporal"]["environment"]["NUM_HISTORY_SHARDS"] == "128"
    assert services["temporal-namespace"]["environment"]["RETENTION"] == "30d"
    assert "TEMPORAL_CODEC_ENDPOINT" in services["temporal-ui"]["environment"]
    # Every file mounted is in the repository.
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"
    # No secret in the file itself: passwords come from .env, which is not in the repository.
    text = COMPOSE.read_text(encoding="utf-8")
    assert re.findall(r"PASSWORD: (?!\$\{)\S+", text) == []
    assert not (COMPOSE.parent / ".env").exists()


def kustomization_resources(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    found = []
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((directory / name).read_text(encoding="utf-8")):
            if document:
                found.append((name, document))
    return found


@pytest.mark.parametrize("directory", ["yuqing", "temporal"])
def test_kubernetes_manifests_follow_the_kubernetes_schemas(directory: str) -> None:
    documents = kustomization_resources(KUBERNETES / directory)
    assert documents
    for name, document in documents:
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{directory}/{name} {document['kind']}: {err.message}")
    # ... and the validator does refuse a wrong one.
    wrong = copy.deepcopy(documents[0][1])
    wrong["spec"] = {"replicas": "three"}
    wrong["kind"] = "Deployment"
    wrong["apiVersion"] = "apps/v1"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, KUBERNETES_VERSION, strict=True)


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc
        for _, doc in kustomization_resources(KUBERNETES / "yuqing")
        if doc["kind"] == kind
    }


def test_kubernetes_deployments_have_probes_requests_budgets_and_autoscaling() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == {"yuqing-worker", "yuqing-api", "yuqing-smtp-intake"}
    budgets = by_kind("PodDisruptionBudget")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{name} has no {probe}"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert any(b["spec"]["selector"]["matchLabels"] == labels for b in budgets.values()), name
    autoscalers = by_kind("HorizontalPodAutoscaler")
    assert autoscalers["yuqing-worker"]["spec"]["scaleTargetRef"]["name"] == "yuqing-worker"
    # Keys and tokens come from a Secret created out of band, never from the repository.
    assert by_kind("Secret") == {}
    text = "\n".join(p.read_text() for p in (KUBERNETES / "yuqing").glob("*.yaml"))
    assert "secretKeyRef" in text and "yuqing-secrets" in text


def test_only_the_api_and_workers_reach_temporals_frontend() -> None:
    (policy,) = [doc for _, doc in kustomization_resources(KUBERNETES / "temporal")]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
        "frontend"
    )
    from_yuqing = [
        peer
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
        and peer["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name") == "yuqing"
    ]
    assert [peer["podSelector"]["matchLabels"] for peer in from_yuqing] == [
        {"yuqing.io/temporal-client": "true"}
    ]
    clients = {
        name
        for name, d in by_kind("Deployment").items()
        if d["spec"]["template"]["metadata"]["labels"].get("yuqing.io/temporal-client") == "true"
    }
    # The SMTP intake reports by update-with-start: it is a Temporal client like the API.
    assert clients == {"yuqing-api", "yuqing-worker", "yuqing-smtp-intake"}
    values = yaml.safe_load((KUBERNETES / "temporal" / "values.yaml").read_text())
    assert values["server"]["config"]["persistence"]["numHistoryShards"] == 512
    assert values["server"]["config"]["namespaces"]["namespace"] == [
        {"name": "default", "retention": "30d"}
    ]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: .ci/run installs it (apt-get install prometheus)")
    return found


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = {name for name, _ in alert_queries()}
    # Temporal's recommended worker alerts, and ours.
    assert {
        "TemporalNoWorkflowPollers",
        "TemporalNonDeterminismError",
        "TemporalWorkflowTaskScheduleToStartHigh",
        "TemporalResourceExhausted",
        "YuqingDeadlineBreached",
        "YuqingDeliveryPendingTooLong",
        "YuqingIncidentWorkflowTaskFailing",
    } <= names


def test_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus" / "prometheus.yml").read_text())
    # In the container the rules are mounted at /etc/prometheus/rules; here, point at the file.
    config["rule_files"] = [str(ALERTS)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [promtool(), "check", "config", str(local)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"yuqing-worker", "yuqing-api", "yuqing-smtp-intake"} <= jobs


def test_dashboard_queries_parse_and_use_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    provisioned = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    queries = dashboard_queries()
    assert len(queries) >= 15
    for _title, expr in queries:
        promql_parser.parse(expr)  # raises on a malformed query
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
    positions = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in dashboard["panels"]]
    assert len(positions) == len(set(positions)), "panels overlap"


def test_dockerfile_is_multi_stage_non_root_and_pinned() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base is not None and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all(s.startswith("${PYTHON_IMAGE}") for s in stages)
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # The image's entry points are the ones the manifests run.
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    for command in ("yuqing-worker", "yuqing-api", "yuqing-smtp-intake"):
        assert f"{command} = " in pyproject

"""The Kubernetes manifests in deploy/kubernetes, checked against the service itself: the probes hit routes the
app serves, the port is the image's, every CDS_ variable is a real setting and the whole set parses as Settings,
the Secret holds placeholders only, and the pods run as the image's non-root user on a read-only root file system
with requests and limits. There is no kubectl or kubeconform here; the Kubernetes schema check runs only where
the kubernetes-validate package is installed."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.routing import Match

from cds_service.app import create_app
from cds_service.audit.store import SqlAuditStore
from cds_service.settings import Settings
from tests.support import REPO

MANIFESTS = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
THIRD_PARTY_ENV = {"PROMETHEUS_MULTIPROC_DIR"}  # prometheus-client's multiprocess mode (cds_service/metrics.py)
PLACEHOLDER = "CHANGE_ME"
WRITABLE_VOLUMES = {"emptyDir", "configMap", "secret", "projected"}


@cache
def documents() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for path in sorted(MANIFESTS.glob("*.y*ml")):
        out[path.name] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return out


def resources(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in documents().values() for doc in docs if doc.get("kind") == kind]


def one(kind: str) -> dict[str, Any]:
    found = resources(kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def containers() -> list[dict[str, Any]]:
    return [c for d in resources("Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def env_values() -> dict[str, str]:
    """Every variable a pod gets: the ConfigMap, the Secret and the containers' own ``env``."""
    values = {**one("ConfigMap")["data"], **one("Secret")["stringData"]}
    for container in containers():
        values.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return values


def env_names() -> set[str]:
    names = set(one("ConfigMap")["data"]) | set(one("Secret")["stringData"])
    for container in containers():
        names |= {e["name"] for e in container.get("env", [])}
    return names


def test_every_manifest_parses_and_the_kustomization_lists_every_file() -> None:
    docs = documents()
    assert "kustomization.yaml" in docs
    listed = docs["kustomization.yaml"][0]["resources"]
    assert sorted(listed) == sorted(name for name in docs if name != "kustomization.yaml")
    for name, parsed in docs.items():
        assert parsed, f"{name} is empty"
        for doc in parsed:
            assert doc.get("apiVersion"), name
            assert doc.get("kind"), name
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], name


def test_kinds_an_operator_needs_are_there() -> None:
    kinds = {doc["kind"] for docs in documents().values() for doc in docs}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds


def test_every_namespaced_resource_is_in_the_kustomization_namespace() -> None:
    namespace = documents()["kustomization.yaml"][0]["namespace"]
    assert one("Namespace")["metadata"]["name"] == namespace
    for docs in documents().values():
        for doc in docs:
            if doc["kind"] not in {"Namespace", "Kustomization"}:
                assert doc["metadata"].get("namespace", namespace) == namespace


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("manifests"), cards_dir=REPO / "cards")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _served_by_a_route(client: TestClient, path: str) -> bool:
    """A route of the app itself matches ``GET path`` fully (not a mount or a fallback)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": b"", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in client.app.router.routes)  # type: ignore[attr-defined]


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: container[name] for name in ("startupProbe", "livenessProbe", "readinessProbe")}


def test_probes_hit_routes_the_app_serves_and_answer_200(served: TestClient) -> None:
    for container in containers():
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for name, probe in _probes(container).items():
            path, port = probe["httpGet"]["path"], probe["httpGet"]["port"]
            assert _served_by_a_route(served, path), f"{name} probes {path}, which the app does not serve"
            assert port in ports or port in ports.values(), f"{name} probes port {port}, not a container port"
            assert served.get(path).status_code == 200, f"{name}: GET {path}"
    paths = {probe["httpGet"]["path"] for c in containers() for probe in _probes(c).values()}
    assert {"/healthz", "/readyz"} <= paths


def test_prometheus_scrapes_a_route_the_app_serves(served: TestClient) -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    path = annotations["prometheus.io/path"]
    assert _served_by_a_route(served, path)
    scraped = served.get(path)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")


def test_readiness_outwaits_the_database_connect_timeout() -> None:
    # /readyz asks PostgreSQL; while it is away the pod is still ready (the spool takes records), so the probe
    # must wait out the connect timeout rather than take every pod out of the Service.
    busy_ms = inspect.signature(SqlAuditStore.__init__).parameters["busy_timeout_ms"].default
    for container in containers():
        assert container["readinessProbe"]["timeoutSeconds"] > busy_ms / 1000


def test_ports_match_the_image_and_the_service() -> None:
    exposed = {int(p) for p in re.findall(r"^EXPOSE\s+(\d+)", DOCKERFILE.read_text(), re.MULTILINE)}
    image_port = int(dockerfile_env()["CDS_PORT"])
    assert exposed == {image_port}
    assert int(env_values()["CDS_PORT"]) == image_port
    named = {}
    for container in containers():
        assert [p["containerPort"] for p in container["ports"]] == [image_port]
        named.update({p["name"]: p["containerPort"] for p in container["ports"]})
    deployment = one("Deployment")
    assert int(deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]) == image_port
    for port in one("Service")["spec"]["ports"]:
        target = port["targetPort"]
        assert named.get(target, target) == image_port


def test_every_cds_variable_is_a_setting_and_the_others_are_known() -> None:
    fields = set(Settings.model_fields)
    for name in env_names():
        if name.startswith("CDS_"):
            assert name.removeprefix("CDS_").lower() in fields, f"{name} is not a field of Settings"
        else:
            assert name in THIRD_PARTY_ENV, f"{name} is neither a CDS_ setting nor a documented third-party variable"


def test_the_configured_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CDS_"):
            monkeypatch.delenv(name)
    for name, value in env_values().items():
        monkeypatch.setenv(name, str(value))
    settings = Settings()
    assert settings.auth_required is True
    assert settings.audit_db_url is not None
    assert settings.audit_db_url.startswith("postgresql+psycopg://"), "several replicas need PostgreSQL"
    assert settings.trusted_clients
    assert str(settings.cards_dir) == dockerfile_env()["CDS_CARDS_DIR"]
    assert settings.workers >= 1


def test_env_from_names_resources_in_the_folder() -> None:
    config, secret = one("ConfigMap")["metadata"]["name"], one("Secret")["metadata"]["name"]
    for container in containers():
        refs = container.get("envFrom", [])
        assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} == {config}
        assert {r["secretRef"]["name"] for r in refs if "secretRef" in r} == {secret}


def test_the_secret_holds_placeholders_only() -> None:
    for secret in resources("Secret"):
        assert "data" not in secret, "base64 data could hide a real value: use stringData placeholders"
        values = secret["stringData"]
        assert values
        for name, value in values.items():
            assert PLACEHOLDER in str(value), f"{name} is not a {PLACEHOLDER} placeholder"
        assert {"CDS_AUDIT_DB_URL", "CDS_TRUSTED_CLIENTS", "CDS_AUDITORS", "CDS_AUDIT_SESSION_SECRET"} <= set(values)
    assert not (set(one("ConfigMap")["data"]) & set(one("Secret")["stringData"]))


def test_containers_have_requests_and_limits() -> None:
    for container in containers():
        for part in ("requests", "limits"):
            assert set(container["resources"][part]) >= {"cpu", "memory"}, f"{container['name']}: {part}"


def test_pods_run_as_the_image_user_on_a_read_only_root() -> None:
    uid = int(re.search(r"useradd\b[^\n]*--uid\s+(\d+)", DOCKERFILE.read_text()).group(1))  # type: ignore[union-attr]
    assert re.search(r"^USER\s+\S+", DOCKERFILE.read_text(), re.MULTILINE)
    for deployment in resources("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        volumes = {v["name"]: v for v in pod["volumes"]}
        for volume in volumes.values():
            assert set(volume) - {"name"} <= WRITABLE_VOLUMES, f"volume {volume['name']}"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            values = env_values()
            for writable in (values["CDS_DATA_DIR"], values["PROMETHEUS_MULTIPROC_DIR"], "/tmp"):
                assert "emptyDir" in mounts.get(writable, {}), f"{writable} needs an emptyDir mount"


def test_replicas_disruption_budget_and_autoscaler_fit_the_deployment() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for selector in (one("Service")["spec"]["selector"], one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"], "the budget must let a node drain"
    deadline = float(env_values()["CDS_DEADLINE_SECONDS"])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > deadline + 5


def test_manifests_match_the_kubernetes_schemas() -> None:
    validator = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed")
    for docs in documents().values():
        for doc in docs:
            if doc["kind"] != "Kustomization":
                validator.validate(doc, "1.29.0", strict=True)  # the oldest release still widely run
                validator.validate(doc, validator.latest_version(), strict=True)


def test_the_guide_links_from_the_readme() -> None:
    guide = REPO / "docs" / "deployment.md"
    assert guide.is_file()
    assert "docs/deployment.md" in (REPO / "README.md").read_text()
    assert MANIFESTS.relative_to(REPO).as_posix() in guide.read_text()

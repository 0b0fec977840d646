"""The Helm chart (helm/continuum), checked with the real helm binary and the Kubernetes
schemas: lint, render with several value sets, validate every manifest, and hold the chart
to its promises (migrations hook, edge DaemonSet, hardening, secrets, schema)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from tests.helm.conftest import ROOT

CHART = ROOT / "helm" / "continuum"
PRODUCTION = ROOT / "helm" / "values-production.yaml"
# A current Kubernetes release whose schemas kubernetes-validate ships.
KUBERNETES_VERSION = "1.33.0"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]

# Value sets rendered once per session: name -> helm arguments.
VALUE_SETS: dict[str, tuple[str, ...]] = {
    "default": (),
    "production": ("-f", str(PRODUCTION)),
    # Everything from the chart: bundled Redis and PostgreSQL, Ingress, agents, a PVC.
    "evaluation": (
        "--set",
        "redis.enabled=true,postgresql.enabled=true,agent.enabled=true,"
        "agent.enrollToken=enroll-me,controlPlane.ingress.enabled=true,"
        "controlPlane.persistence.enabled=true",
    ),
    # External services given by URL in values: the chart's own Secret holds them.
    "by-url": (
        "--set",
        "database.url=postgresql+psycopg://c:pw@pg.db.svc:5432/c,"
        "redis.url=redis://redis.cache.svc:6379/0,controlPlane.replicas=2,"
        "controlPlane.persistence.enabled=true,"
        "controlPlane.persistence.accessModes={ReadWriteMany},"
        "agent.enabled=true,agent.enrollToken=enroll-me",
    ),
}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`helm template` with these arguments, parsed; cached per argument list."""
    cache: dict[tuple[str, ...], list[Manifest]] = {}

    def _render(*args: str) -> list[Manifest]:
        if args not in cache:
            done = _helm(helm, "template", "continuum", str(CHART), "--namespace", "edge-ai", *args)
            assert done.returncode == 0, f"helm template {' '.join(args)} failed:\n{done.stderr}"
            cache[args] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
        return cache[args]

    return _render


def _helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=60, check=False
    )


def _of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[Manifest], kind: str, name: str) -> Manifest:
    found = [doc for doc in _of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def _pod_spec(doc: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def _containers(doc: Manifest) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(doc)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# -- helm lint and the Kubernetes schemas ---------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_passes(helm: Path, value_set: str) -> None:
    done = _helm(helm, "lint", "--strict", str(CHART), *VALUE_SETS[value_set])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_manifest_validates_against_kubernetes(render: Render, value_set: str) -> None:
    docs = render(*VALUE_SETS[value_set])
    assert docs
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']} ({value_set})"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")


def test_strict_validation_catches_an_unknown_field(render: Render) -> None:
    """The validator is not toothless: a misspelt field is an error."""
    deployment = json.loads(json.dumps(_of_kind(render(), "Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("value_set", "kinds"),
    [
        ("default", {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
                     "PodDisruptionBudget", "NetworkPolicy"}),
        ("production", {"Deployment", "Service", "ConfigMap", "ServiceAccount", "Ingress",
                        "PodDisruptionBudget", "NetworkPolicy", "Job", "DaemonSet"}),
        ("evaluation", {"Deployment", "StatefulSet", "Service", "ConfigMap", "Secret", "Job",
                        "DaemonSet", "Ingress", "PersistentVolumeClaim", "NetworkPolicy"}),
    ],
)  # fmt: skip
def test_renders_the_expected_kinds(render: Render, value_set: str, kinds: set[str]) -> None:
    rendered = {doc["kind"] for doc in render(*VALUE_SETS[value_set])}
    assert kinds <= rendered, f"missing: {sorted(kinds - rendered)}"


# -- the control plane ----------------------------------------------------------------------------


def test_production_runs_three_replicas_on_external_services(render: Render) -> None:
    docs = render(*VALUE_SETS["production"])
    deployment = _one(docs, "Deployment", "continuum")
    assert deployment["spec"]["replicas"] == 3
    # No Redis or PostgreSQL from the chart.
    assert not _of_kind(docs, "StatefulSet")
    assert [d["metadata"]["name"] for d in _of_kind(docs, "Deployment")] == ["continuum"]
    env = _env(_pod_spec(deployment)["containers"][0])
    assert env["CONTINUUM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "continuum"
    assert env["CONTINUUM_REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "redis-url"
    # Artifacts shared through PostgreSQL: no ReadWriteMany volume, no volume claim at all.
    assert _one(docs, "ConfigMap", "continuum")["data"]["CONTINUUM_ARTIFACTS_IN_DATABASE"] == "true"
    assert not _of_kind(docs, "PersistentVolumeClaim")
    (data,) = [v for v in _pod_spec(deployment)["volumes"] if v["name"] == "data"]
    assert data == {"name": "data", "emptyDir": {}}


def test_replicas_with_artifacts_in_the_database_need_no_shared_volume(render: Render) -> None:
    docs = render("--set", "controlPlane.replicas=2,redis.enabled=true,postgresql.enabled=true,"
                  "controlPlane.artifactsInDatabase=true")  # fmt: skip
    assert _one(docs, "Deployment", "continuum")["spec"]["replicas"] == 2
    assert _one(docs, "ConfigMap", "continuum")["data"]["CONTINUUM_ARTIFACTS_IN_DATABASE"] == "true"
    default = _one(render(), "ConfigMap", "continuum")["data"]
    assert default["CONTINUUM_ARTIFACTS_IN_DATABASE"] == "false"


def test_control_plane_probes_and_settings(render: Render) -> None:
    docs = render()
    deployment = _one(docs, "Deployment", "continuum")
    container = _pod_spec(deployment)["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["envFrom"] == [{"configMapRef": {"name": "continuum"}}]
    config = _one(docs, "ConfigMap", "continuum")["data"]
    assert config["CONTINUUM_HOST"] == "0.0.0.0"
    assert config["CONTINUUM_PORT"] == str(container["ports"][0]["containerPort"])
    assert config["CONTINUUM_DATA_DIR"] == "/var/lib/continuum"
    # Secrets never go through the ConfigMap.
    assert not {"CONTINUUM_ADMIN_TOKEN", "CONTINUUM_DATABASE_URL"} & set(config)


def test_embedded_default_has_no_migrations_job(render: Render) -> None:
    """Embedded SQLite is migrated by the server at start; a Job could not reach it."""
    assert not _of_kind(render(), "Job")


# -- migrations hook ------------------------------------------------------------------------------


def test_migrations_job_is_a_pre_install_pre_upgrade_hook(render: Render) -> None:
    job = _one(render(*VALUE_SETS["production"]), "Job", "continuum-migrations")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) == 0
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    container = _pod_spec(job)["containers"][0]
    assert [*container["command"], *container["args"]] == ["continuum", "db", "upgrade"]
    assert _pod_spec(job)["restartPolicy"] == "Never"
    ref = _env(container)["CONTINUUM_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "continuum", "key": "database-url"}


def test_migrations_get_a_hook_secret_before_the_chart_secret_exists(render: Render) -> None:
    docs = render(*VALUE_SETS["by-url"])
    job = _one(docs, "Job", "continuum-migrations")
    secret = _one(docs, "Secret", "continuum-migrations")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weight = int(secret["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert weight < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    ref = _env(_pod_spec(job)["containers"][0])["CONTINUUM_DATABASE_URL"]["valueFrom"]
    assert ref["secretKeyRef"]["name"] == "continuum-migrations"


def test_migrations_after_install_with_the_bundled_postgresql(render: Render) -> None:
    """The bundled PostgreSQL does not exist before install: the Job runs post-install."""
    job = _one(render(*VALUE_SETS["evaluation"]), "Job", "continuum-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


# -- agents ---------------------------------------------------------------------------------------


def test_agent_daemonset_defaults_suit_kubeedge(render: Render) -> None:
    daemonset = _one(render(*VALUE_SETS["evaluation"]), "DaemonSet", "continuum-agent")
    spec = _pod_spec(daemonset)
    assert spec["nodeSelector"] == {"node-role.kubernetes.io/edge": ""}
    assert {"key": "node-role.kubernetes.io/edge", "operator": "Exists",
            "effect": "NoSchedule"} in spec["tolerations"]  # fmt: skip


def test_agent_daemonset_takes_node_selector_and_tolerations_from_values(
    render: Render,
) -> None:
    selector = {"continuum.io/edge": "true", "kubernetes.io/arch": "arm64"}
    tolerations = [
        {"key": "edge.example.com/flaky", "operator": "Exists", "effect": "NoExecute"},
        {"key": "dedicated", "operator": "Equal", "value": "ai", "effect": "NoSchedule"},
    ]
    # Helm merges maps with the defaults: null removes the KubeEdge label from the selector.
    override = {**selector, "node-role.kubernetes.io/edge": None}
    docs = render(
        *VALUE_SETS["evaluation"],
        "--set-json", f"agent.nodeSelector={json.dumps(override)}",
        "--set-json", f"agent.tolerations={json.dumps(tolerations)}",
        "--set", "agent.hostNetwork=true",
    )  # fmt: skip
    spec = _pod_spec(_one(docs, "DaemonSet", "continuum-agent"))
    assert spec["nodeSelector"] == selector
    assert spec["tolerations"] == tolerations
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_agent_pools_carry_their_own_figures(render: Render) -> None:
    docs = render(*VALUE_SETS["production"])
    pools = {d["metadata"]["name"]: _pod_spec(d) for d in _of_kind(docs, "DaemonSet")}
    assert set(pools) == {"continuum-agent-gateways", "continuum-agent-cameras"}
    cameras = pools["continuum-agent-cameras"]
    env = _env(cameras["containers"][0])
    assert env["CONTINUUM_AGENT_TIER"]["value"] == "device"
    assert float(env["CONTINUUM_AGENT_POWER_BUSY_W"]["value"]) == 5
    assert json.loads(env["CONTINUUM_AGENT_LABELS"]["value"]) == {"site": "plant-a"}
    # Left out of the pool: the agent-wide value (tolerations, battery).
    assert env["CONTINUUM_AGENT_BATTERY"]["value"] == "auto"
    assert cameras["tolerations"][0]["key"] == "node-role.kubernetes.io/edge"
    assert cameras["nodeSelector"]["continuum.io/pool"] == "cameras"
    gateways = _env(pools["continuum-agent-gateways"]["containers"][0])
    assert gateways["CONTINUUM_AGENT_BATTERY"]["value"] == "none"


def test_agent_reads_the_battery_and_its_token_safely(render: Render) -> None:
    daemonset = _one(render(*VALUE_SETS["evaluation"]), "DaemonSet", "continuum-agent")
    spec = _pod_spec(daemonset)
    container = spec["containers"][0]
    assert [*container["command"], *container["args"]] == ["continuum", "agent"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["power-supply"]["mountPath"] == "/sys/class/power_supply"
    assert mounts["power-supply"]["readOnly"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["power-supply"]["hostPath"]["path"] == "/sys/class/power_supply"
    env = _env(container)
    token = env["CONTINUUM_AGENT_ENROLL_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert token == {"name": "continuum-agent", "key": "enroll-token"}
    assert env["CONTINUUM_AGENT_NAME"]["value"] == "$(NODE_NAME)"
    assert env["CONTINUUM_AGENT_SERVER"]["value"] == "http://continuum.edge-ai.svc:8080"


# -- hardening ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_container_runs_non_root_hardened_with_resources(
    render: Render, value_set: str
) -> None:
    workloads = [d for d in render(*VALUE_SETS[value_set]) if d["kind"] in POD_KINDS]
    assert workloads
    for doc in workloads:
        pod = _pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod.get("automountServiceAccountToken") is False
        for container in _containers(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["runAsUser"] > 0, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_host_paths_are_read_only_but_the_agent_state(render: Render, value_set: str) -> None:
    for doc in (d for d in render(*VALUE_SETS[value_set]) if d["kind"] in POD_KINDS):
        host = {v["name"] for v in _pod_spec(doc).get("volumes", []) if "hostPath" in v}
        for container in _containers(doc):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in host and mount["name"] != "state":
                    assert mount.get("readOnly") is True, f"{doc['metadata']['name']}: {mount}"


def test_network_policies_admit_agents_and_nothing_else(render: Render) -> None:
    docs = render(*VALUE_SETS["evaluation"])
    agent_selector = {"app.kubernetes.io/name": "continuum",
                      "app.kubernetes.io/instance": "continuum",
                      "app.kubernetes.io/component": "agent"}  # fmt: skip
    control = _one(docs, "NetworkPolicy", "continuum-control-plane")["spec"]
    assert control["policyTypes"] == ["Ingress"]
    [rule] = control["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": agent_selector}}]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    agent = _one(docs, "NetworkPolicy", "continuum-agent")["spec"]
    [rule] = agent["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": agent_selector}}]
    assert rule["ports"] == [{"port": 7070, "protocol": "TCP"}]
    for store, port in (("redis", 6379), ("postgresql", 5432)):
        policy = _one(docs, "NetworkPolicy", f"continuum-{store}")["spec"]
        [rule] = policy["ingress"]
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
        components = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                      for peer in rule["from"]}  # fmt: skip
        assert "agent" not in components
        assert "control-plane" in components


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_rendered_when_an_existing_secret_is_named(render: Render) -> None:
    docs = render(*VALUE_SETS["production"])
    assert not _of_kind(docs, "Secret")
    refs = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for doc in docs
        if doc["kind"] in POD_KINDS
        for container in _containers(doc)
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert refs == {"continuum", "continuum-enroll"}


def test_chart_secret_holds_the_admin_token_and_database_url(render: Render) -> None:
    docs = render(*VALUE_SETS["by-url"])
    data = _one(docs, "Secret", "continuum")["data"]
    assert set(data) == {"admin-token", "database-url", "redis-url"}
    assert base64.b64decode(data["redis-url"]).decode() == "redis://redis.cache.svc:6379/0"
    # The Redis URL may carry a password: from the Secret, never the ConfigMap.
    assert "CONTINUUM_REDIS_URL" not in _one(docs, "ConfigMap", "continuum")["data"]
    env = _env(_pod_spec(_one(docs, "Deployment", "continuum"))["containers"][0])
    ref = env["CONTINUUM_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "continuum", "key": "redis-url"}


def test_tls_secrets_reach_the_control_plane_and_the_agents(render: Render) -> None:
    docs = render("--set", "controlPlane.tls.secretName=cp-tls,agent.enabled=true,"
                  "agent.enrollToken=enroll-me,agent.tls.secretName=agent-tls,"
                  "agent.tls.caSecretName=fleet-ca")  # fmt: skip
    config = _one(docs, "ConfigMap", "continuum")["data"]
    assert config["CONTINUUM_TLS_CERT"] == "/etc/continuum/tls/tls.crt"
    assert config["CONTINUUM_TLS_KEY"] == "/etc/continuum/tls/tls.key"
    assert config["CONTINUUM_PUBLIC_URL"].startswith("https://")
    pod = _pod_spec(_one(docs, "Deployment", "continuum"))
    container = pod["containers"][0]
    assert {"name": "tls", "mountPath": "/etc/continuum/tls", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert {"name": "tls", "secret": {"secretName": "cp-tls", "defaultMode": 0o400}} in pod[
        "volumes"
    ]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    agent = _pod_spec(_one(docs, "DaemonSet", "continuum-agent"))
    agent_env = _env(agent["containers"][0])
    assert agent_env["CONTINUUM_AGENT_SERVER"]["value"].startswith("https://continuum.edge-ai")
    assert agent_env["CONTINUUM_AGENT_ADVERTISE_URL"]["value"].startswith("https://")
    assert agent_env["CONTINUUM_AGENT_TLS_CERT"]["value"] == "/etc/continuum/tls/tls.crt"
    assert agent_env["CONTINUUM_AGENT_CA_FILE"]["value"] == "/etc/continuum/ca/ca.crt"
    volumes = {v["name"]: v for v in agent["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "agent-tls"
    assert volumes["ca"]["secret"]["secretName"] == "fleet-ca"
    probe = agent["containers"][0]["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["scheme"]) == ("/readyz", "HTTPS")


# -- values refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--set", "controlPlane.replicas=three"), "controlPlane.replicas"),
        (("--set", "controlPlane.replica=3"), "replica"),
        (("--set", "agent.battery=solar"), "agent.battery"),
        (("--set", "agent.tier=fog"), "agent.tier"),
        (("--set", "agent.powerBusyW=-1"), "agent.powerBusyW"),
        (("--set", "image.pullPolicy=Sometimes"), "image.pullPolicy"),
        (("--set", "securityContext.runAsUser=0"), "securityContext.runAsUser"),
    ],
)
def test_schema_refuses_a_bad_value(helm: Path, args: tuple[str, ...], named: str) -> None:
    done = _helm(helm, "template", "continuum", str(CHART), *args)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert named in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "controlPlane.replicas=3"), "needs Redis"),
        (("--set", "controlPlane.replicas=2,redis.enabled=true"), "needs PostgreSQL"),
        (
            ("--set", "controlPlane.replicas=2,redis.enabled=true,postgresql.enabled=true"),
            "needs the artifacts shared",
        ),
        (("--set", "agent.enabled=true"), "needs an enrollment token"),
        (("--set", "postgresql.enabled=true,database.url=postgresql://x/y"), "choose one"),
    ],
)
def test_inconsistent_values_are_refused(helm: Path, args: tuple[str, ...], message: str) -> None:
    done = _helm(helm, "template", "continuum", str(CHART), *args)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr

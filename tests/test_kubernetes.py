"""deploy/kubernetes/, validated offline (no cluster here): every manifest against the Kubernetes
API schemas of a pinned version with kubernetes-validate, strictly (unknown fields are errors); the
KEDA ScaledObject (a CRD kubernetes-validate has no schema for) against KEDA's models from
cloudcoil-models-keda, strictly by a round trip. Then what the schemas cannot know: the probes hit
routes the app has, images and commands match the Dockerfile's targets and CMDs, no secret value is
written down, every container runs as non-root with requests and limits, the worker's drain fits."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.34.0"  # pinned: bump on purpose
KEDA_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
WORKLOADS = {"Deployment", "Job", "StatefulSet", "DaemonSet"}


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return found


def resources() -> list[tuple[str, dict]]:
    return [(name, d) for name, d in documents() if d.get("kind") != "Kustomization"]


def pod_specs() -> list[tuple[str, dict, dict]]:
    return [(f"{name}:{d['metadata']['name']}", d, d["spec"]["template"]["spec"])
            for name, d in resources() if d["kind"] in WORKLOADS]


def containers() -> list[tuple[str, dict, dict]]:
    return [(f"{where}/{c['name']}", spec, c) for where, _, spec in pod_specs()
            for c in spec.get("initContainers", []) + spec["containers"]]


@pytest.mark.parametrize("name,doc", [(f"{n}:{d['kind']}/{d['metadata']['name']}", d) for n, d in resources()
                                      if (d["apiVersion"], d["kind"]) not in KEDA_KINDS])
def test_manifest_is_valid_for_the_pinned_kubernetes(name, doc):
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is not installed (test extra)")
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        pytest.fail(f"{name}: {exc.message} at {'/'.join(map(str, exc.path))}")


def _unknown_keys(original, dumped, where=""):
    """Keys in the manifest that the model dropped (pydantic ignores extras): typos, wrong nesting."""
    if isinstance(original, dict):
        missing = [f"{where}/{k}" for k in original if k not in (dumped or {})]
        return missing + [m for k in original if k in (dumped or {}) for m in _unknown_keys(original[k], dumped[k], f"{where}/{k}")]
    if isinstance(original, list):
        return [m for i, (a, b) in enumerate(zip(original, dumped or [])) for m in _unknown_keys(a, b, f"{where}/{i}")]
    return []


@pytest.mark.parametrize("name,doc", [(f"{n}:{d['metadata']['name']}", d) for n, d in resources()
                                      if (d["apiVersion"], d["kind"]) in KEDA_KINDS])
def test_keda_scaledobject_matches_kedas_schema(name, doc):
    keda = pytest.importorskip("cloudcoil.models.keda.v1alpha1", reason=(
        "kubernetes-validate has no schema for KEDA's ScaledObject (a CRD), and cloudcoil-models-keda "
        "(KEDA's CRD models) is not installed: `pip install cloudcoil-models-keda`"))
    model = keda.ScaledObject.model_validate(doc)
    dumped = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert not _unknown_keys(doc, dumped), f"{name}: fields KEDA does not know: {_unknown_keys(doc, dumped)}"
    for trigger in doc["spec"]["triggers"]:
        assert trigger["type"] == "prometheus"
        # The metric the server exports, and max() since every replica reports the same number.
        assert re.fullmatch(r'max\(tuneserve_study_open_trials\{study="[^"]+"\}\)', trigger["metadata"]["query"])
    assert doc["spec"]["minReplicaCount"] == 0, "the fleet scales to zero when idle"
    targets = {d["metadata"]["name"] for _, d in resources() if d["kind"] == "Deployment"}
    assert doc["spec"]["scaleTargetRef"]["name"] in targets


def test_the_scaled_metric_is_exported():
    from tuneserve_service.observability import metrics

    assert "tuneserve_study_open_trials" in Path(metrics.__file__).read_text()


def test_kustomization_lists_every_applied_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Not applied by -k, on purpose: a template with empty values, and a CRD object that needs KEDA.
    assert on_disk - listed == {"secret.example.yaml", "keda-scaledobject.yaml"}
    assert listed <= on_disk


def test_probes_point_at_routes_the_app_has(tmp_path):
    """Each httpGet probe's path answers 200 on the real app (a migrated SQLite database)."""
    from fastapi.testclient import TestClient

    from tuneserve_service.config import Settings
    from tuneserve_service.db.migrate import upgrade
    from tuneserve_service.main import create_app

    url = f"sqlite:///{tmp_path / 'probe.db'}"
    upgrade(url)
    probes = 0
    with TestClient(create_app(Settings(database_url=url))) as app:
        for where, _, c in containers():
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(kind)
                if probe and "httpGet" in probe:
                    probes += 1
                    path = probe["httpGet"]["path"]
                    assert app.get(path).status_code == 200, f"{where} {kind}: GET {path} does not answer 200"
                    port = probe["httpGet"]["port"]
                    ports = [p.get("name") for p in c.get("ports", [])] + [p["containerPort"] for p in c.get("ports", [])]
                    assert port in ports, f"{where} {kind}: port {port} is not the container's"
    server = next(c for where, _, c in containers() if "tuneserve-server/" in where)
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes >= 2


def _dockerfile() -> dict[str, list[str]]:
    """Target -> its CMD (exec form), from the Dockerfile."""
    cmds, target = {}, None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.I)
        if m:
            target = m.group(1)
        m = re.match(r"CMD\s+(\[.*\])", line)
        if m:
            cmds[target] = json.loads(m.group(1))
    return cmds


def test_images_and_commands_match_the_dockerfile():
    cmds = _dockerfile()
    assert {"server", "worker"} <= set(cmds)
    for where, _, c in containers():
        image = c["image"].rsplit("/", 1)[-1].split(":")[0]
        target = image.removeprefix("tuneserve-")
        assert target in cmds, f"{where}: image {c['image']} is no Dockerfile target ({sorted(cmds)})"
        command = c.get("command", cmds[target])
        if "worker" in where or target == "worker":
            assert command == cmds[target], f"{where}: runs {command}, the image's CMD is {cmds[target]}"
        elif "migrate" in where:
            assert command == ["tuneserve", "db", "upgrade"]
        else:
            assert command == cmds[target], f"{where}: runs {command}, the image's CMD is {cmds[target]}"


def test_no_secret_value_is_written_down():
    for name, doc in resources():
        if doc["kind"] == "Secret":
            values = {**doc.get("data", {}), **doc.get("stringData", {})}
            assert values and all(v in ("", None) for v in values.values()), f"{name}: a Secret template holds values"
    for where, _, c in containers():
        for env in c.get("env", []):
            sensitive = re.search(r"TOKEN|PASSWORD|SECRET|DATABASE_URL|KEY", env["name"])
            if sensitive:
                assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), \
                    f"{where}: {env['name']} must come from a Secret"
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml"))
    assert not re.search(r"postgres(ql)?(\+\w+)?://[^@\s]*:[^@\s]*@", text), "a password in a database URL"


def test_every_container_runs_as_non_root_with_limits():
    for where, spec, c in containers():
        pod, own = spec.get("securityContext", {}), c.get("securityContext", {})
        assert own.get("runAsNonRoot", pod.get("runAsNonRoot")) is True, where
        assert own.get("runAsUser", pod.get("runAsUser", 0)) != 0, where
        assert own.get("allowPrivilegeEscalation") is False, where
        assert own.get("readOnlyRootFilesystem") is True, where
        assert own.get("capabilities", {}).get("drop") == ["ALL"], where
        resources_ = c.get("resources", {})
        assert {"cpu", "memory"} <= set(resources_.get("limits", {})), f"{where}: cpu and memory limits"
        assert {"cpu", "memory"} <= set(resources_.get("requests", {})), f"{where}: cpu and memory requests"
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_workers_drain_and_say_who_they_are():
    for where, doc, spec in pod_specs():
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") != "worker":
            continue
        c = spec["containers"][0]
        assert spec["terminationGracePeriodSeconds"] >= 60, f"{where}: the grace must cover an epoch and the release"
        assert "kill -TERM 1" in " ".join(c["lifecycle"]["preStop"]["exec"]["command"]), where
        env = {e["name"]: e for e in c["env"]}
        assert env["TUNESERVE_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", where
        if "gpu" in where:
            assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
            assert "--slots" in c["args"]
    pdbs = [d for _, d in resources() if d["kind"] == "PodDisruptionBudget"]
    server = next(d for _, d in resources() if d["kind"] == "Deployment" and d["metadata"]["name"] == "tuneserve-server")
    assert server["spec"]["replicas"] >= 2
    assert any(p["spec"]["selector"] == server["spec"]["selector"] for p in pdbs)

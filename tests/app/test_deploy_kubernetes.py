"""deploy/kubernetes/traces-at-scale.yaml: the receivers' writer id is the pod name, the
Service exposes both OTLP ports, and the CronJob's spec loads with the Dask engine."""

from __future__ import annotations

from typing import Any

import yaml

from mapper.core.spec import loads_spec
from tests.paths import ROOT

MANIFEST = ROOT / "deploy" / "kubernetes" / "traces-at-scale.yaml"


def _docs() -> dict[str, Any]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFEST.read_text())}


def test_receivers_have_their_own_writer_id_and_both_ports() -> None:
    docs = _docs()
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    cmd = container["command"]
    assert cmd[:2] == ["latmap", "serve"] and cmd[cmd.index("--writer-id") + 1] == "$(POD_NAME)"
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == {4317, 4318}


def test_nightly_spec_loads_and_points_at_the_dask_scheduler() -> None:
    docs = _docs()
    spec = loads_spec(docs["ConfigMap"]["data"]["stream.yaml"])
    assert spec.engine.kind == "dask"
    assert spec.engine.scheduler == "tcp://latmap-dask-scheduler:8786"
    assert docs["DaskCluster"]["metadata"]["name"] == "latmap-dask"  # the operator names its service <name>-scheduler

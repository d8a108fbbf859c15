"""deploy/kubernetes/*.yaml against the schemas of the objects they declare.

Built-in kinds are validated strictly (unknown fields refused) with ``kubernetes-validate``,
which ships the Kubernetes OpenAPI schemas (no cluster, no network). The Dask operator's
``DaskCluster`` is checked against the CRD the operator installs, as published in the
``dask-kubernetes`` package, with unknown fields refused where the CRD does not preserve
them (what ``kubectl apply --validate=strict`` does). Under ``CI=true`` a missing validator
fails the run instead of skipping.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.paths import ROOT

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
CRD = "operator/deployment/helm/dask-kubernetes-operator/crds/{}.yaml"


def _need(module: str) -> Any:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not installed (pip install -e '.[dev]')")
        pytest.skip(f"{module} is not installed (dev extra)")
    return importlib.import_module(module)


def _docs() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]


def test_there_are_manifests() -> None:
    assert {p.name for p in MANIFESTS} >= {"cronjob.yaml", "traces-at-scale.yaml"}


@pytest.mark.parametrize("doc", [d for _, d in _docs() if "k8s.io" not in d["apiVersion"] and "." not in
                                 d["apiVersion"].split("/")[0]], ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_built_in_kinds_validate_strictly(doc: dict[str, Any]) -> None:
    kv = _need("kubernetes_validate")
    kv.validate(doc, kv.latest_version(), strict=True)


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused wherever it lists properties and neither
    preserves unknown fields nor allows additional properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _crd_schema(kind: str) -> dict[str, Any]:
    _need("dask_kubernetes")
    spec = importlib.util.find_spec("dask_kubernetes")
    assert spec is not None and spec.submodule_search_locations
    crd = yaml.safe_load((Path(spec.submodule_search_locations[0]) / CRD.format(kind.lower())).read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("served"))
    return copy.deepcopy(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("doc", [d for _, d in _docs() if d["apiVersion"].startswith("kubernetes.dask.org/")],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_dask_custom_resources_validate_against_the_operators_crd(doc: dict[str, Any]) -> None:
    jsonschema = _need("jsonschema")
    schema = _strict(_crd_schema(doc["kind"]))
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_a_wrong_field_is_caught() -> None:
    """The check itself catches a typo (a strict schema that accepted anything would pass)."""
    jsonschema = _need("jsonschema")
    doc = next(d for _, d in _docs() if d["kind"] == "DaskCluster")
    bad = copy.deepcopy(doc)
    bad["spec"]["worker"]["replica"] = 3
    body = {k: v for k, v in bad.items() if k not in ("apiVersion", "kind", "metadata")}
    assert list(jsonschema.Draft7Validator(_strict(_crd_schema("DaskCluster"))).iter_errors(body))
    kv = _need("kubernetes_validate")
    cron = copy.deepcopy(next(d for _, d in _docs() if d["kind"] == "CronJob"))
    cron["spec"]["schedul"] = cron["spec"].pop("schedule")
    with pytest.raises(kv.ValidationError):
        kv.validate(cron, kv.latest_version(), strict=True)

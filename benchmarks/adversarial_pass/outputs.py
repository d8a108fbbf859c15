"""Part ``outputs``: template injection into what Grafana and Prometheus read (issue 25).

Stage names, owners, selectors and event names carry Grafana variables (``${...}``,
``$__file{...}``, ``$1``, ``[[x]]``), Go templates (``b{{ x``) and XML breakers; ``discover``
reads metric names and units with newlines. Every output must still parse in its language
(JSON, YAML, ``promtool check rules`` when promtool is on PATH, XML for map.svg), a dashboard
may hold no template token but latmap's own, a provisioning file no ``$`` Grafana would
expand, and a discover draft no key the metric names tried to add.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from .common import Probe, Run

NAMES = ["${__user.login}", "$__file{/etc/passwd}", "$__env{HOME}", "$1", "$datasource", "[[var]]", "b{{ x",
         "a}}b", "{{ .ExternalURL }}", "end{", "x: y # z", "]]>", "<script>alert(1)</script>"]
#: Grafana and Go template tokens (the tests' pattern, tests/hardening/test_escaping.py).
TOKEN = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\]|\{\{[^}]*\}\}")
#: latmap's own templates in its dashboard; no other may appear.
OURS = {"${datasource}", "$__all", "$__rate_interval", "$__range", "{{le}}", "{{percentile}}"}
PROVISIONING_VAR = re.compile(r"\$(\{|__file\{|__env\{|[A-Za-z_])")
#: The top-level keys a discover draft writes (``draft: true`` marks it a draft until edited).
DRAFT_KEYS = {"version", "name", "owner", "window", "percentiles", "sources", "stages", "draft"}


def hostile_spec(url: str, names: list[str]) -> str:
    stages = "".join(
        f"  - {{name: {json.dumps(n)}, owner: {json.dumps(n)}, process: {{source: prom, histogram: m{i}_seconds, "
        f"selector: {{svc: {json.dumps(n)}}}}}, objectives: {{p99: 25ms}}}}\n" for i, n in enumerate(names))
    event = json.dumps("${__user.login} [[x]] {{y}}")
    return (f'version: 1\nname: hostile\nwindow: 1h\n'
            f'sources: {{prom: {{kind: prometheus, url: "{url}", retries: 0, timeout: 3s}}}}\n'
            f"stages:\n{stages}events:\n  - {{name: {event}, "
            'start: "2026-01-01T00:00:00Z", end: "2026-01-01T01:00:00Z"}\n'
            "objectives: {end_to_end: {p99: 1s}}\n")


def _strings(doc: object, key: str = "") -> list[tuple[str, str]]:
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in _strings(v, k)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v, key)]
    return [(key, doc)] if isinstance(doc, str) else []


def _files(run: Run, *suffixes: str) -> list[Path]:
    out = run.folder / "out"
    return sorted(f for f in out.rglob("*") if f.is_file() and f.suffix in suffixes) if out.exists() else []


def dashboards_ok(run: Run) -> str | None:
    if run.code != 0:
        return f"exit {run.code}: {run.last_line[:200]}"
    jsons = _files(run, ".json")
    if not jsons:
        return "no dashboard written"
    for f in jsons:
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except ValueError as err:
            return f"{f.name} is not JSON: {err}"
        strings = _strings(doc)
        text = "\n".join(s for k, s in strings if k not in ("expr", "query"))
        queries = "\n".join(s.replace("{{", "") for k, s in strings if k in ("expr", "query"))
        foreign = (set(TOKEN.findall(text)) | set(TOKEN.findall(queries))) - OURS
        if foreign:
            return f"{f.name}: Grafana would expand {sorted(foreign)[:4]}"
    for f in _files(run, ".yaml", ".yml"):
        try:
            yaml.safe_load(f.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            return f"{f.name} is not YAML: {str(err)[:150]}"
        if "provisioning" in f.parts and (m := PROVISIONING_VAR.search(f.read_text(encoding="utf-8")
                                                                       .replace("$$", ""))):
            return f"{f.name}: provisioning would expand {m.group(0)!r}"
        if "rules" in f.parts and (bad := promtool_check(f)):
            return bad
    return None


def promtool_check(path: Path) -> str | None:
    """``promtool check rules`` on ``path`` (nothing when promtool is not on PATH)."""
    promtool = shutil.which("promtool")
    if not promtool:
        return None
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                           timeout=60, check=False)
    if check.returncode != 0:
        return f"promtool check rules {path.name}: {(check.stdout + check.stderr).strip().splitlines()[-1][:200]}"
    return None


def rules_ok(run: Run) -> str | None:
    if run.code != 0:
        return f"exit {run.code}: {run.last_line[:200]}"
    path = run.folder / "rules.yml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        return f"rules.yml: {str(err)[:200]}"
    if not isinstance(doc, dict) or "groups" not in doc:
        return "rules.yml has no groups"
    return promtool_check(path)


def report_ok(run: Run) -> str | None:
    if run.code not in (0, 1):
        return f"exit {run.code}: {run.last_line[:200]}"
    svgs = _files(run, ".svg")
    if not svgs:
        return "no map.svg written"
    for f in svgs:
        try:
            ET.parse(f)
        except ET.ParseError as err:
            return f"{f.name} is not well-formed XML: {err}"
    for f in _files(run, ".json"):
        try:
            json.loads(f.read_text(encoding="utf-8"))
        except ValueError as err:
            return f"{f.name} is not JSON: {err}"
    return None


def draft_ok(run: Run) -> str | None:
    path = run.folder / "draft.yaml"
    if run.code != 0 or not path.exists():
        return None if run.code in (1, 2) else "no draft written"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        return f"the draft is not YAML: {str(err)[:200]}"
    if not isinstance(doc, dict) or set(doc) - DRAFT_KEYS:
        return f"the draft's keys were rewritten: {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}"
    if list(doc.get("sources") or {}) != ["prom"]:
        return f"the draft's sources were rewritten: {doc.get('sources')}"
    return None


def output_probes(url: str, quick: bool) -> list[Probe]:
    ok = f"{url}/ok"
    hostile = hostile_spec(ok, NAMES)
    probes = [
        Probe("dashboards --out with template names", ["dashboards", "-c", "{spec}", "--out", "{out}"], hostile,
              check=dashboards_ok),
        Probe("rules --alerts with template names", ["rules", "-c", "{spec}", "--alerts", "--out", "{dir}/rules.yml"],
              hostile, check=rules_ok),
        Probe("rules (no alerts) with template names", ["rules", "-c", "{spec}", "--out", "{dir}/rules.yml"],
              hostile, check=rules_ok),
        Probe("report --out (map.svg) with template names", ["report", "-c", "{spec}", "--out", "{out}",
                                                            "--timeout", "3s"], hostile, check=report_ok),
        Probe("discover --write: names and units with newlines", ["discover", "--prometheus", f"{url}/discover",
                                                                  "--write", "{dir}/draft.yaml", "--timeout", "3s"],
              check=draft_ok),
        Probe("dashboards with U+FFFE in a name", ["dashboards", "-c", "{spec}", "--out", "{out}"],
              hostile_spec(ok, ["x\ufffey", "ok"]).replace("\ufffe", "\\uFFFE")),
        Probe("dashboards with a spec path holding $__file{x}", ["dashboards", "-c", "{dir}/$__file{x}/s.yaml",
                                                                 "--out", "{out}"],
              files={"$__file{x}/s.yaml": hostile_spec(ok, ["a", "b"])}, check=dashboards_ok),
    ]
    if quick:
        keep = {"dashboards --out with template names", "rules --alerts with template names",
                "report --out (map.svg) with template names", "discover --write: names and units with newlines"}
        probes = [p for p in probes if p.name in keep]
    for p in probes:
        p.part = "outputs"
    return probes

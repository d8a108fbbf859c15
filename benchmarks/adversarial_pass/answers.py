"""Part ``answers``: hostile or broken answers and inputs, and secrets cut before they are
masked (issue 25), plus new angles of the pass's own.

* Secrets cut: a Prometheus echoing the bearer token or the Basic credentials (encoded, and
  decoded as a proxy would) after N bytes, so that a message cut at 120 or 200 characters
  ends inside the secret; a token spelled with spaces between its characters. No prefix of
  six characters of any secret may reach stdout, stderr or a file.
* Hostile numbers (``le="-Inf"``, negative and overflowing increases, a summary without a
  valid quantile, a native histogram with only negative buckets, a scrape ``_bucket`` without
  ``le``), hostile Grafana answers (no ``uid``, a list, a foreign dashboard whose ``tags`` is a
  string), hostile local inputs (a baseline nested 5,000 deep, ``/dev/zero``, odd time zones,
  a 5,000-digit window, year 9999, lone surrogates, ``--width 1e-300``, ``--out`` under /proc).
* What must load (a merge key with an overriding key) and what must write each stage its own
  budget (stages sharing an anchor).
* New angles: Brotli, a redirect loop, a 1 GB Content-Length with a 10-byte body, a 429 asking
  for three years, endless ``100 Continue``, 10^5 stages, Unicode normalisation twins, a YAML
  ``!!python/object`` tag, a symlink loop as ``--out``, a FIFO as the spec, a sparse 2 GB
  token file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from . import hostile
from .common import PROM_USER, Check, Probe, Run, both, exits

MAP = ["map", "-c", "{spec}", "--timeout", "3s", "--format", "json"]


def spec(url: str, *, stages: int = 2, extra: str = "", name: str = "a", auth: str = "bearer",
         measure: str = "histogram: h{i}_seconds", kind: str = "prometheus") -> str:
    """The pass's usual stream: ``stages`` stages on one source at ``url``."""
    src = {"bearer": "bearer_token_env: ADV_PROM_TOKEN",
           "basic": f"basic_auth: {{username: {PROM_USER}, password_env: ADV_PROM_PASSWORD}}",
           "unicode-token": "bearer_token_env: ADV_UNICODE_TOKEN",
           "unicode-user": "basic_auth: {username: 'üsér-名前', password_env: ADV_PROM_PASSWORD}",
           "zero-file": "bearer_token_file: /dev/zero",
           "sparse-file": "bearer_token_file: '{dir}/sparse'",
           "none": ""}[auth]
    source = f'{{kind: {kind}, url: "{url}", {src}{", " if src else ""}retries: 0, timeout: 3s}}'
    body = "".join(f"  - {{name: {name if i == 0 else f's{i}'}, owner: team, process: {{source: prom, "
                   f"{measure.format(i=i)}}}}}\n" for i in range(stages))
    return f"version: 1\nname: adv\nwindow: 1h\nsources:\n  prom: {source}\nstages:\n{body}{extra}"


def no_negative_p50(run: Run) -> str | None:
    """A histogram of negative durations must not come out as a healthy negative p50: a
    refusal, or a p50 beside a warning (or error) check that says "negative"."""
    if run.code != 0:
        return None
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        return "stdout is not JSON"
    bad: list[str] = []

    def walk(x: object, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                value = v.get("value") if k == "p50" and isinstance(v, dict) else v
                if k == "p50" and isinstance(value, int | float) and value < 0:
                    bad.append(f"{path}.{k}={value}")
                walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(doc, "")
    warned = any(c.get("level") in ("warning", "error") and "negative" in json.dumps(c).lower()
                 for c in doc.get("checks", []) if isinstance(c, dict))
    return f"a negative p50 with no warning: {bad[0]}" if bad and not warned else None


def no_grafana_write(mode: str) -> Check:
    """``--push`` must not overwrite a foreign dashboard, whatever its ``tags`` look like."""
    def check(run: Run) -> str | None:
        wrote = [w for w in hostile.WRITES if w.startswith(mode) and "/api/dashboards/db" in w]
        return f"overwrote a foreign dashboard: {wrote[0]}" if wrote else None
    return check


def budgets_apart(run: Run) -> str | None:
    if run.code != 0:
        return f"no budgets written (exit {run.code}): {run.last_line[:200]}"
    doc = yaml.safe_load((run.folder / "stream.yaml").read_text())
    a, b = (s.get("objectives") or {} for s in doc["stages"][:2])
    if a == b:
        return f"both stages got one budget through the shared anchor: {a} / {b}"
    return None


def answer_probes(url: str, quick: bool) -> list[Probe]:
    ok = f"{url}/ok"
    base = spec(ok)
    probes: list[Probe] = []
    # -- secrets cut before they are masked
    pads = range(60, 231, 12) if not quick else (100, 184)
    for pad in pads:
        probes.append(Probe(f"secret cut: bearer echoed after {pad} bytes", MAP, spec(f"{url}/echopad{pad}")))
        probes.append(Probe(f"secret cut: Basic echoed after {pad} bytes", MAP,
                            spec(f"{url}/echopad{pad}", auth="basic")))
        if not quick:
            probes.append(Probe(f"secret cut: Basic decoded by a proxy after {pad} bytes", MAP,
                                spec(f"{url}/echobasic{pad}", auth="basic")))
    probes += [
        Probe("secret spelled with spaces: bearer", MAP, spec(f"{url}/echospaced")),
        Probe("secret spelled with spaces: Basic", MAP, spec(f"{url}/echospaced", auth="basic")),
        Probe("secret cut: report --out files", ["report", "-c", "{spec}", "--out", "{out}", "--timeout", "3s"],
              spec(f"{url}/echopad112")),
    ]
    # -- hostile numbers
    for mode in ("leneginf", "negincr", "overflow", "hugeincr", "nativeinf"):
        probes.append(Probe(f"answer {mode}", MAP, spec(f"{url}/{mode}")))
    probes += [
        Probe("answer: summary without a valid quantile", MAP, spec(f"{url}/summarynoq", measure="summary: s{i}")),
        Probe("answer: native histogram with only negative buckets", MAP, spec(f"{url}/nativeneg"),
              check=no_negative_p50),
        Probe("scrape: a _bucket line without le", MAP, spec(f"{url}/scrape/metrics", kind="scrape", auth="none")),
    ]
    # -- Grafana
    push = ["dashboards", "-c", "{spec}", "--out", "{out}", "--token-env", "ADV_GRAFANA_TOKEN", "--push"]
    probes += [
        Probe("Grafana: folders and answers without uid", [*push, f"{url}/g-nouid", "--folder", "latmap"], base),
        Probe("Grafana: every answer a list", [*push, f"{url}/g-list", "--folder", "latmap"], base),
        Probe("Grafana: a foreign dashboard whose tags is a string", [*push, f"{url}/g-foreign"], base,
              check=both(exits(1, 2), no_grafana_write("g-foreign"))),
    ]
    # -- local inputs
    deep = "[" * 5000 + "]" * 5000
    deep_obj = '{"a":' * 5000 + "1" + "}" * 5000
    cron = "events:\n  - {name: e, cron: '0 14 * * *', duration: 1h%s}\n"
    probes += [
        Probe("non-ASCII bearer token", MAP, spec(ok, auth="unicode-token")),
        Probe("non-ASCII Basic user", MAP, spec(ok, auth="basic").replace(f"username: {PROM_USER}",
                                                                         "username: 'üsér-名前'")),
        Probe("baseline: a list nested 5,000 deep", [*MAP, "--baseline", "{dir}/base.json"], base,
              files={"base.json": deep}),
        Probe("baseline: an object nested 5,000 deep", [*MAP, "--baseline", "{dir}/base.json"], base,
              files={"base.json": deep_obj}),
        Probe("baseline: /dev/zero", [*MAP, "--baseline", "/dev/zero"], base),
        Probe("bearer_token_file: /dev/zero", MAP, spec(ok, auth="zero-file")),
        Probe("event tz names a directory", MAP, base + cron % ", tz: America"),
        Probe("event tz of 300 characters", MAP, base + cron % (", tz: " + "A" * 300)),
        Probe("event tz climbing out of zoneinfo", MAP, base + cron % ", tz: '../../../../etc/passwd'"),
        Probe("--window of 5,000 digits", [*MAP, "--window", "9" * 5000 + "s"], base),
        Probe("window: of 5,000 digits in the spec", MAP, base.replace("window: 1h", "window: " + "9" * 5000)),
        Probe("--until in year 9999 with a cron event", [*MAP, "--until", "9999-12-31T23:00:00Z"], base + cron % ""),
        Probe("a lone surrogate in a stage name", MAP, spec(ok, name='"a\\uD800b"')),
        Probe("U+FFFE in a stage name", MAP, spec(ok, name='"x\\uFFFEy"')),
        Probe("buckets --width 1e-300", ["buckets", "-c", "{spec}", "--width", "1e-300", "--timeout", "3s"], base),
        Probe("buckets --width nan", ["buckets", "-c", "{spec}", "--width", "nan", "--timeout", "3s"], base),
        Probe("report --out under /proc", ["report", "-c", "{spec}", "--out", "/proc/self/latmap-adv",
                                           "--timeout", "3s"], base, check=exits(2)),
        Probe("map --out under /proc", [*MAP, "--out", "/proc/1/latmap-adv"], base, check=exits(2)),
    ]
    # -- what must load, and what must write apart
    merged = base.replace("  - {name: s1, owner: team, process: {source: prom, histogram: h1_seconds}}\n",
                          "  - <<: *first\n    name: s1\n    owner: other\n")
    merged = merged.replace("  - {name: a,", "  - &first {name: a,")
    shared = ("version: 1\nname: adv\nwindow: 1h\nsources:\n"
              f'  fast: {{kind: prometheus, url: "{url}/okmany", retries: 0}}\n'
              f'  slow: {{kind: prometheus, url: "{url}/okslow", retries: 0}}\n'
              "stages:\n"
              "  - {name: a, owner: t, process: {source: fast, histogram: h0_seconds}, objectives: &o {p50: 50s}}\n"
              "  - {name: b, owner: t, process: {source: slow, histogram: h1_seconds}, objectives: *o}\n"
              "objectives: {end_to_end: {p99: 60s}}\n")
    probes += [
        Probe("YAML merge key with an overriding key", MAP, merged, check=exits(0)),
        Probe("budgets --write on stages sharing an anchor", ["budgets", "-c", "{spec}", "--write", "--timeout", "3s"],
              shared, check=budgets_apart),
    ]
    # -- new angles
    many = spec(ok, stages=100_000)
    nfc, nfd = "caf\u00e9", "cafe\u0301"

    def symlink_loop(d: Path) -> None:
        os.symlink(d / "out", d / "out")

    def fifo(d: Path) -> None:
        os.mkfifo(d / "stream.fifo")

    def sparse(d: Path) -> None:
        with open(d / "sparse", "wb") as f:
            f.truncate(2 << 30)

    probes += [
        Probe("Prometheus answers Content-Encoding br", MAP, spec(f"{url}/br")),
        Probe("Prometheus redirects to itself forever", MAP, spec(f"{url}/loop302")),
        Probe("Prometheus promises 1 GB and sends 10 bytes", MAP, spec(f"{url}/cl1g")),
        Probe("Prometheus asks to retry in three years (retries: 3)", MAP,
              spec(f"{url}/retryafter").replace("retries: 0", "retries: 3"), timeout=45),
        Probe("Prometheus answers 100 Continue forever", MAP, spec(f"{url}/info100"), timeout=45),
        Probe("a spec of 10^5 stages: rules", ["rules", "-c", "{spec}"], many, timeout=90),
        Probe("Unicode twins: NFC and NFD stage names", MAP,
              spec(ok, name=nfc).replace("name: s1", f"name: {nfd}")),
        Probe("Unicode: a fullwidth and a zero-width stage name", MAP,
              spec(ok, name="\uff41\u200b").replace("name: s1", "name: a")),
        Probe("YAML tag !!python/object/apply", MAP,
              base + "x: !!python/object/apply:os.system ['touch /tmp/latmap-adv-pwned']\n", check=exits(2)),
        Probe("--out a symlink loop", ["report", "-c", "{spec}", "--out", "{out}", "--timeout", "3s"], base,
              setup=symlink_loop),
        Probe("-c a FIFO nobody writes", ["map", "-c", "{dir}/stream.fifo"], setup=fifo, must_exit=True,
              timeout=20),
        Probe("bearer_token_file: a sparse 2 GB file", MAP, spec(ok, auth="sparse-file"), setup=sparse),
    ]
    if quick:
        keep = {"secret cut: bearer echoed after 100 bytes", "secret spelled with spaces: bearer", "answer negincr",
                "answer: summary without a valid quantile", "answer: native histogram with only negative buckets",
                "scrape: a _bucket line without le", "Grafana: a foreign dashboard whose tags is a string",
                "baseline: a list nested 5,000 deep", "--until in year 9999 with a cron event",
                "buckets --width 1e-300", "YAML merge key with an overriding key",
                "budgets --write on stages sharing an anchor", "Prometheus redirects to itself forever",
                "YAML tag !!python/object/apply"}
        probes = [p for p in probes if p.name in keep]
    for p in probes:
        p.part = "answers"
    return probes

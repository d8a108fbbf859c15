"""Part ``cli``: broken and hostile specs (alias bombs, deep nesting, garbage bytes, control
characters in names, credentials in URLs, absurd durations and times, a 1,000-stage chain
...), hostile flags, and a loopback Prometheus that misbehaves in every way a server can
(echoes the request headers back in its error, answers 50 MB or a gzip bomb, hangs, drips,
resets, answers HTML, the wrong JSON shapes, terminal escapes, a redirect to a URL with
credentials)."""

from __future__ import annotations

import random

from .common import PROM_PASSWORD, PROM_USER, Probe


def spec_text(url: str, *, stages: int = 2, extra: str = "", name: str = "a", auth: str = "bearer") -> str:
    src = (f'{{kind: prometheus, url: "{url}", bearer_token_env: ADV_PROM_TOKEN, retries: 0, timeout: 3s}}'
           if auth == "bearer" else
           f'{{kind: prometheus, url: "{url}", basic_auth: {{username: {PROM_USER}, '
           f'password_env: ADV_PROM_PASSWORD}}, retries: 0, timeout: 3s}}')
    body = "".join(f"  - {{name: {name if i == 0 else f's{i}'}, owner: team, process: {{source: prom, "
                   f"histogram: h{i}_seconds}}}}\n" for i in range(stages))
    return f"version: 1\nname: adv\nwindow: 1h\nsources:\n  prom: {src}\nstages:\n{body}{extra}"


def cli_probes(url: str, quick: bool) -> list[Probe]:
    """The first pass's inputs (issue 15): specs, flags and a misbehaving Prometheus."""
    ok = f"{url}/ok"
    base = spec_text(ok)
    cases: list[tuple[str, list[str], str | bytes | None]] = [
        ("valid spec, well-behaved server", ["map", "-c", "{spec}"], base),
        ("empty file", ["map", "-c", "{spec}"], ""),
        ("random bytes", ["map", "-c", "{spec}"], bytes(random.Random(1).randrange(256) for _ in range(4096))),
        ("not UTF-8", ["map", "-c", "{spec}"], base.encode().replace(b"adv", b"\xff\xfe\xfd")),
        ("top level is a list", ["map", "-c", "{spec}"], "- 1\n- 2\n"),
        ("YAML alias bomb", ["map", "-c", "{spec}"],
         base + "percentiles: &a9 [&a8 [&a7 [&a [1,2,3,4,5,6,7,8,9]]]]\n" + "".join(
             f"x{i}: &b{i} [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" for i in range(1))
         + "bomb: &c1 [*b0,*b0,*b0,*b0,*b0,*b0,*b0,*b0,*b0]\nbomb2: &c2 [*c1,*c1,*c1,*c1,*c1,*c1,*c1,*c1,*c1]\n"
         + "bomb3: [*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2,*c2]\n"),
        ("deep nesting", ["map", "-c", "{spec}"], base + "deep: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("5 MB of comments", ["map", "-c", "{spec}"], base + ("# " + "x" * 1000 + "\n") * 5000),
        ("window: [24h]", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: [24h]")),
        ("window: 999999d", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: 999999d")),
        ("window: -1h", ["map", "-c", "{spec}"], base.replace("window: 1h", "window: -1h")),
        ("percentiles: [x]", ["map", "-c", "{spec}"], base + "percentiles: [x]\n"),
        ("percentiles: [100, 0, -1, .nan]", ["map", "-c", "{spec}"], base + "percentiles: [100, 0, -1, .nan]\n"),
        ("stage name ''", ["map", "-c", "{spec}"], spec_text(ok, name="''")),
        ("stage name with OSC escape", ["map", "-c", "{spec}"], spec_text(ok, name='"x\\e]0;pwn\\a"')),
        ("stage name with newline", ["map", "-c", "{spec}"], spec_text(ok, name='"a\\nb"')),
        ("stage name of 10k characters", ["map", "-c", "{spec}"], spec_text(ok, name="n" * 10_000)),
        ("stage name HTML", ["map", "-c", "{spec}"], spec_text(ok, name='"<img src=x onerror=alert(1)>"')),
        ("owner: {a: 1}", ["map", "-c", "{spec}"], base.replace("owner: team", "owner: {a: 1}", 1)),
        ("duplicate stage names", ["map", "-c", "{spec}"], spec_text(ok, name="s1")),
        ("unknown key", ["map", "-c", "{spec}"], base + "colour: blue\n"),
        ("credentials in the URL", ["map", "-c", "{spec}"],
         base.replace(ok, f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9/ok")),
        ("ftp URL", ["map", "-c", "{spec}"], base.replace(ok, "ftp://127.0.0.1/x")),
        ("URL with an escape", ["map", "-c", "{spec}"], base.replace(ok, ok + "\\e[2J")),
        ("event with a bad cron", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: e, cron: '99 * * * *', duration: 1h}\n"),
        ("event with a bad tz", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: e, cron: '0 14 * * *', duration: 1h, tz: 'Mars/Olympus'}\n"),
        ("event name with an escape", ["map", "-c", "{spec}"],
         base + "events:\n  - {name: \"\\e[2Jx\", cron: '0 14 * * *', duration: 1h}\n"),
        ("future: unknown hop", ["map", "-c", "{spec}"], base + "future:\n  - {hop: nope, scale: 0.5}\n"),
        ("future: scale -1", ["map", "-c", "{spec}"], base + "future:\n  - {hop: a, scale: -1}\n"),
        ("objective p99: fast", ["map", "-c", "{spec}"], base + "objectives:\n  end_to_end: {p99: fast}\n"),
        ("PromQL injection in a selector", ["map", "-c", "{spec}"],
         base.replace("histogram: h0_seconds", "histogram: h0_seconds, selector: {service: 'a\"}) or vector(1) #'}")),
        ("PromQL injection in a metric name", ["map", "-c", "{spec}"],
         base.replace("histogram: h0_seconds", "histogram: 'h0{x=\"1\"}) or vector(1)'")),
        ("unknown source kind", ["map", "-c", "{spec}"], base.replace("kind: prometheus", "kind: influx")),
        ("timeout: -1s", ["map", "-c", "{spec}"], base.replace("timeout: 3s", "timeout: -1s")),
        ("retries: 1e9", ["map", "-c", "{spec}"], base.replace("retries: 0", "retries: 1e9")),
        ("token variable not set", ["map", "-c", "{spec}"], base.replace("ADV_PROM_TOKEN", "ADV_NOT_SET")),
        ("tls ca_file missing", ["map", "-c", "{spec}"],
         base.replace("retries: 0", "retries: 0, tls: {ca_file: /nonexistent/ca.pem}")),
        ("a chain of 1,000 stages", ["map", "-c", "{spec}", "--format", "json"], spec_text(ok, stages=1000)),
        ("--window 999999d", ["map", "-c", "{spec}", "--window", "999999d"], base),
        ("--window nan", ["map", "-c", "{spec}", "--window", "nan"], base),
        ("--until 1e20", ["map", "-c", "{spec}", "--until", "1e20"], base),
        ("--until nan", ["map", "-c", "{spec}", "--until", "nan"], base),
        ("--timeout 0s", ["map", "-c", "{spec}", "--timeout", "0s"], base),
        ("--format xml", ["map", "-c", "{spec}", "--format", "xml"], base),
        ("--prometheus with credentials", ["map", "-c", "{spec}", "--prometheus",
                                           f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9"], base),
        ("--prometheus with an escape", ["map", "-c", "{spec}", "--prometheus", "http://h:1/\x1b[2J"], base),
        ("-c a missing file", ["map", "-c", "/nonexistent/stream.yaml"], None),
        ("-c a directory", ["map", "-c", "/tmp"], None),
        ("-c /dev/zero", ["map", "-c", "/dev/zero"], None),
        ("whatif with a bad change", ["whatif", "-c", "{spec}", "--scale", "nope=0.5"], base),
        ("discover --prometheus with credentials", ["discover", "--prometheus",
                                                    f"http://{PROM_USER}:{PROM_PASSWORD}@127.0.0.1:9"], None),
    ]
    modes = ["echo", "echo401", "huge", "gzipbomb", "hang", "drip", "reset", "badjson", "html", "datalist",
             "resultstring", "valuenan", "lebad", "deep", "esc", "redirect", "warnings"]
    for mode in modes:
        spec = spec_text(f"{url}/{mode}")
        cases.append((f"server {mode}: map (bearer)", ["map", "-c", "{spec}", "--timeout", "3s"], spec))
        if not quick:
            cases.append((f"server {mode}: map (basic auth)", ["map", "-c", "{spec}", "--timeout", "3s"],
                          spec_text(f"{url}/{mode}", auth="basic")))
            cases.append((f"server {mode}: discover", ["discover", "--prometheus", f"{url}/{mode}", "--timeout",
                                                        "3s"], None))
    cases.append(("server echo: report --out (files searched)", ["report", "-c", "{spec}", "--out", "{out}",
                                                                 "--timeout", "3s"], spec_text(f"{url}/echo")))
    if quick:
        keep = {"valid spec, well-behaved server", "YAML alias bomb", "window: [24h]", "stage name with OSC escape",
                "credentials in the URL", "--until nan", "-c /dev/zero",
                "server echo: map (bearer)", "server huge: map (bearer)", "server esc: map (bearer)",
                "server redirect: map (bearer)", "server echo: report --out (files searched)"}
        cases = [c for c in cases if c[0] in keep]
    return [Probe(name, args, spec) for name, args, spec in cases]


"""Grafana dashboards and Prometheus rules generated from the stream spec: ``grafana`` (one
dashboard per stream, built with Grafana's typed builders), ``queries`` (the PromQL behind
every panel), ``rules`` (recording rules), ``alerts`` (burn-rate alerts for the objectives),
``provisioning`` (the files Grafana and Prometheus load, and ``--check``) and ``push``
(upsert through Grafana's HTTP API).

Imports the core model and the collectors' PromQL helpers only. Submodules load on first use.
"""

from typing import TYPE_CHECKING

from mapper.core.lazy import lazy_getattr

if TYPE_CHECKING:
    from dashboards import alerts, grafana, provisioning, push, queries, rules

__all__ = ["alerts", "grafana", "provisioning", "push", "queries", "rules"]

__getattr__ = lazy_getattr(__name__, __all__)

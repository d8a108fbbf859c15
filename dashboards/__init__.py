"""Grafana dashboards and Prometheus recording rules generated from the stream spec (to come)."""

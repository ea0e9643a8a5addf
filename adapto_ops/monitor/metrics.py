"""`--metrics ADDR:PORT`: the monitor's results as Prometheus metrics.

For teams that outgrow one monitor: an existing Prometheus scrapes these and
Alertmanager takes over the paging. Each monitor has its own registry, so
the process's default collectors (and tests running several) do not mix in.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult
from adapto_ops.monitor.state import check_id, is_failure
from adapto_ops.monitor.stats import Stats, latency_ms


def parse_listen(value: str) -> tuple[str, int]:
    """"ADDR:PORT" or "[IPv6]:PORT" as (address, port); a bad value is a usage error."""
    address, sep, port_text = value.rpartition(":")
    address = address.strip("[]")
    try:
        port = int(port_text)
        ipaddress.ip_address(address)
        if not sep or not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise AdaptoError(f"--metrics {value!r}: expected ADDR:PORT with an IP address, "
                          "e.g. 127.0.0.1:9108") from None
    return address, port


class Metrics:
    """Gauges and counters per (host, check), updated after every round."""

    def __init__(self, env: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        labels = ["env", "host", "check"]
        self.env = env
        self.up = Gauge("adapto_check_up", "1 if the check's last result did not fail",
                        labels, registry=self.registry)
        self.latency = Gauge("adapto_check_latency_seconds",
                             "the check's last measured time", labels, registry=self.registry)
        self.failures = Counter("adapto_check_failures", "failed results of the check",
                                labels, registry=self.registry)
        self.uptime = Gauge("adapto_uptime_ratio", "share of rounds the check did not fail",
                            labels, registry=self.registry)
        self.rounds = Counter("adapto_monitor_rounds", "rounds the monitor ran", ["env"],
                              registry=self.registry)
        self.incidents = Gauge("adapto_incidents_open", "incidents alerted and not resolved",
                               ["env"], registry=self.registry)
        self.alerts = Counter("adapto_alerts", "alert and resolved messages",
                              ["env", "kind"], registry=self.registry)
        self._server: Any = None

    def update(self, results: list[CheckResult], stats: Stats, open_incidents: int) -> None:
        self.rounds.labels(self.env).inc()
        self.incidents.labels(self.env).set(open_incidents)
        for result in results:
            labels = (self.env, result.host, result.key)
            self.up.labels(*labels).set(0 if is_failure(result) else 1)
            ms = latency_ms(result)
            if ms is not None:
                self.latency.labels(*labels).set(ms / 1000)
            counter = self.failures.labels(*labels)  # present at 0 before the first failure
            if is_failure(result):
                counter.inc()
            uptime = stats.checks[check_id(result)].uptime
            if uptime is not None:
                self.uptime.labels(*labels).set(uptime)

    def count_alert(self, kind: str) -> None:
        self.alerts.labels(self.env, kind).inc()

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()

    def serve(self, address: str, port: int) -> int:
        """Serve /metrics on address:port in a thread; return the port bound (0 picks one)."""
        from prometheus_client import start_http_server

        try:
            self._server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise AdaptoError(f"--metrics {address}:{port}: cannot listen: "
                              f"{exc.strerror or exc}") from None
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

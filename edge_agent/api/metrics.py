"""GET /metrics: the mesh as this board hears it, and the API's own traffic, for Prometheus.

Device figures are read from the latest status of each device at scrape time
(a custom collector, so nothing goes stale in between); job outcomes are the
done/failed events heard since the service started. Links are what each
agent reports seeing: a peer in a device's status is reachable over the bridges.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.api.backend import MeshBackend

GAUGES = [  # (name, help, Status attribute)
    ("dmoa_device_online", "1 if the device's agent is online", "online"),
    ("dmoa_device_queue_depth", "Tasks queued or running on the device", "queue"),
    ("dmoa_device_alpha_seconds", "Mean seconds per inference (EWMA)", "alpha"),
    ("dmoa_device_lambda_per_second", "Prompts per second submitted at the device", "lam"),
    ("dmoa_device_rho", "The device's own utilisation estimate", "rho"),
    ("dmoa_device_tokens_per_second", "Generation speed", "tokens_per_s"),
    ("dmoa_device_cpu_percent", "CPU use of the board", "cpu"),
    ("dmoa_device_memory_percent", "Memory use of the board", "memory"),
    ("dmoa_device_temperature_celsius", "The board's temperature", "temperature"),
]
COUNTERS = [
    ("dmoa_device_tasks_completed", "Inferences the device has completed since its start", "completed"),
    ("dmoa_device_rejected_messages", "Malformed or unexpected messages the device dropped", "rejected"),
    ("dmoa_device_worker_restarts", "Restarts of the device's model worker", "worker_restarts"),
]


class MeshCollector(Collector):
    def __init__(self, backend: MeshBackend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        statuses = self._backend.statuses()
        for name, text, attr in GAUGES:
            family = GaugeMetricFamily(name, text, labels=["device"])
            for device, status in sorted(statuses.items()):
                value = getattr(status, attr)
                if value is not None:
                    family.add_metric([device], float(value))
            yield family
        for name, text, attr in COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["device"])
            for device, status in sorted(statuses.items()):
                counter.add_metric([device], float(getattr(status, attr)))
            yield counter
        alerts = GaugeMetricFamily("dmoa_device_alerts", "Alerts the device raises for its owner (see its status)",
                                   labels=["device"])
        for device, status in sorted(statuses.items()):
            alerts.add_metric([device], float(len(status.alerts)))
        yield alerts
        links = GaugeMetricFamily("dmoa_link_up", "1 if the device hears the peer over the bridges",
                                  labels=["device", "peer"])
        for device, status in sorted(statuses.items()):
            for peer in sorted(statuses):
                if peer != device and status.online:
                    links.add_metric([device, peer], 1.0 if peer in status.peers else 0.0)
        yield links
        jobs = CounterMetricFamily("dmoa_jobs", "Jobs heard finishing since this service started",
                                   labels=["origin", "outcome"])
        for (origin, outcome), count in sorted(self._backend.outcome_counts().items()):
            jobs.add_metric([origin, outcome], float(count))
        yield jobs
        yield GaugeMetricFamily("dmoa_broker_connected", "1 if this service is connected to its broker",
                                value=1.0 if self._backend.connected() else 0.0)


class ApiMetrics:
    """The registry /metrics serves, and the API's own instruments."""

    def __init__(self, backend: MeshBackend) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(MeshCollector(backend))
        self.requests = Counter("dmoa_api_requests", "Chat completion requests by HTTP status",
                                ["status"], registry=self.registry)
        self.in_flight = Gauge("dmoa_api_in_flight", "Chat completions being answered", registry=self.registry)
        self.seconds = Histogram("dmoa_api_request_seconds", "Time to the whole answer", registry=self.registry,
                                 buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600))
        self.first_token = Histogram("dmoa_api_first_token_seconds", "Time to the first streamed token",
                                     registry=self.registry, buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300))

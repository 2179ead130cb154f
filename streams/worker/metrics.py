"""Prometheus metrics of the worker, served at /metrics on its web port (with /health)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["WorkerCollector", "render_metrics"]


class WorkerCollector:
    """Reads the ingestor's live numbers at scrape time (nothing is kept twice)."""

    def __init__(self, ingestor: Any, highwater: Any = None) -> None:
        self.ingestor = ingestor
        self.highwater = highwater  # tp -> next offset the broker will write (None: unknown)

    def collect(self) -> Any:
        ing = self.ingestor
        counters = ing.counters
        rows = CounterMetricFamily("rollout_lake_rows", "Rows written to the lake", labels=["table"])
        for key, value in sorted(counters.items()):
            if key.startswith("rows_"):
                rows.add_metric([key[5:]], value)
        yield rows
        events = CounterMetricFamily("rollout_lake_events", "Valid events folded, by type", labels=["type"])
        for kind in ("session_start", "turn", "session_end", "outcome_reward", "judgment"):
            events.add_metric([kind], counters.get(kind, 0))
        yield events
        yield CounterMetricFamily("rollout_lake_dead_letters", "Records sent to the dead letters", value=counters.get("dead_letters", 0))
        yield CounterMetricFamily("rollout_lake_duplicates", "Duplicate events dropped", value=counters.get("duplicates", 0))
        yield CounterMetricFamily("rollout_lake_batches", "Batches committed to the lake", value=counters.get("batches", 0))
        yield CounterMetricFamily("rollout_lake_sessions_evicted", "Finished sessions evicted from memory", value=counters.get("sessions_evicted", 0))
        yield CounterMetricFamily("rollout_lake_sessions_reloaded", "Sessions rebuilt from the lake", value=counters.get("sessions_reloaded", 0))
        yield GaugeMetricFamily("rollout_lake_open_sessions", "Sessions held in memory", value=ing.open_sessions)
        yield GaugeMetricFamily("rollout_lake_commit_seconds", "Duration of the last batch commit", value=ing.committer.last_latency_s)
        yield CounterMetricFamily("rollout_lake_commit_seconds_total", "Time spent committing batches", value=ing.committer.latency_sum_s)
        committed = GaugeMetricFamily("rollout_lake_committed_offset", "Last offset whole in the lake", labels=["topic", "partition"])
        lag = GaugeMetricFamily("rollout_lake_consumer_lag", "Records in the log not yet in the lake", labels=["topic", "partition"])
        for (topic, partition), offset in sorted(ing.guard.last_committed().items()):
            committed.add_metric([topic, str(partition)], offset)
            high = self.highwater((topic, partition)) if self.highwater else None
            if high is not None:
                lag.add_metric([topic, str(partition)], max(high - offset - 1, 0))
        yield committed
        yield lag


def render_metrics(collector: WorkerCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)

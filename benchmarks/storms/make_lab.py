"""Writes lab-m32.ndjson: the 40-alert storm of the support-desk lab this project grew from.

An AI system (model API, vector store, tools, replicas) at 03:00 UTC: a model-api 5xx storm over five
minutes with its dependents degrading, replica lag a little later, and a second, small model-api 5xx
flare 45 minutes in. Expected at the default 10-minute window: 5 incidents (88% noise reduction); at a
60-minute window the late flare merges with the first storm: 4 incidents. Times are whole seconds
after START. Run: python benchmarks/storms/make_lab.py > benchmarks/storms/lab-m32.ndjson
"""

from __future__ import annotations

import sys

import orjson

START = 1772420400  # 2026-03-02T03:00:00Z

# (service, alertname, severity, count, first second, last second, instance prefix, summary)
FLARES = [
    ("model-api", "5xx", "critical", 18, 0, 300, "model-api", "model API returns HTTP 5xx"),
    ("vector-store", "latency", "warning", 8, 60, 420, "vector-store", "vector search p99 latency above 2s"),
    ("tools", "timeout", "warning", 6, 180, 540, "tools-runner", "tool calls time out"),
    ("replicas", "lag", "warning", 4, 720, 960, "replica", "replica lag above 30s"),
    ("model-api", "5xx", "critical", 4, 2700, 2880, "model-api", "model API returns HTTP 5xx"),
]


def lab_alerts() -> list[dict[str, object]]:
    """The 40 alerts in time order, in the generic alert JSON."""
    out: list[dict[str, object]] = []
    for flare, (service, name, sev, count, first, last, prefix, summary) in enumerate(FLARES):
        for k in range(count):
            t = first + round(k * (last - first) / max(count - 1, 1))
            instance = f"{prefix}-{k % 6}"
            out.append({
                "fingerprint": f"lab-{flare}-{k:02d}",
                "starts_at": START + t,
                "severity": sev,
                "source": "lab",
                "summary": f"{summary} on {instance}",
                "labels": {"alertname": name, "service": service, "instance": instance,
                           "cluster": "ai-prod", "namespace": "assistant"},
            })
    out.sort(key=lambda a: (a["starts_at"], a["fingerprint"]))  # type: ignore[return-value]
    return out


if __name__ == "__main__":
    for alert in lab_alerts():
        sys.stdout.buffer.write(orjson.dumps(alert) + b"\n")

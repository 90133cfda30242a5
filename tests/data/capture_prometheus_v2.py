"""Capture the bodies real Prometheus POSTs to an Alertmanager's /api/v2/alerts (firing, then resolved).

    python tests/data/capture_prometheus_v2.py "prometheus 2.42" tests/data/prometheus_v2_posts.json

Run in a scratch folder: it writes rules.yml, prom.yml, p.log and a data/ folder there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RULES = """groups:
- name: capture
  rules:
  - alert: HighRequestLatency
    expr: vector(1) and on() (vector(time()) < vector(%d))
    labels: {severity: page, service: checkout, cluster: eu-1}
    annotations: {summary: "checkout p99 above 2s", description: "p99 {{ $value }}s"}
"""

got: list[tuple[float, bytes]] = []


class Receiver(BaseHTTPRequestHandler):
    """Records every POSTed body with the time it arrived."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        got.append((time.time(), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def ends_at(body: bytes) -> float:
    """The first alert's endsAt as a Unix time."""
    return datetime.fromisoformat(json.loads(body)[0]["endsAt"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    with open("rules.yml", "w") as f:
        f.write(RULES % (time.time() + 10))
    with open("prom.yml", "w") as f:
        f.write(f"""global: {{evaluation_interval: 1s, scrape_interval: 15s}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
  - static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
""")
    with open("p.log", "w") as log:
        p = subprocess.Popen(["/usr/bin/prometheus", "--config.file=prom.yml", "--storage.tsdb.path=data",
                              "--web.listen-address=127.0.0.1:0", "--web.enable-lifecycle",
                              "--rules.alert.resend-delay=2s"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while not got and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(40)  # long enough for the rule to stop firing and the resolution to be sent
        finally:
            p.terminate()
            p.wait()
    firing = next((t, b) for t, b in got if t < ends_at(b))
    resolved = next((t, b) for t, b in got if t >= ends_at(b))
    out = [{"what": w, "received_at": round(t, 3), "body": b.decode()}
           for w, (t, b) in (("firing", firing), ("resolved", resolved))]
    version = sys.argv[1] if len(sys.argv) > 1 else ""
    with open(sys.argv[2] if len(sys.argv) > 2 else "out.json", "w") as f:
        json.dump({"prometheus": version, "posts": out}, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

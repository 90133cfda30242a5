"""Capture the bodies real Prometheus POSTs to an Alertmanager's /api/v2/alerts (firing, then resolved)."""
import json, os, signal, subprocess, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
got = []
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        got.append((time.time(), body)); self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H); port = srv.server_address[1]
threading.Thread(target=srv.serve_forever, daemon=True).start()
rules = """groups:
- name: capture
  rules:
  - alert: HighRequestLatency
    expr: vector(1) and on() (vector(time()) < vector(%d))
    labels: {severity: page, service: checkout, cluster: eu-1}
    annotations: {summary: "checkout p99 above 2s", description: "p99 {{ $value }}s"}
"""
open("rules.yml", "w").write(rules % (time.time() + 10))
cfg = f"""global: {{evaluation_interval: 1s, scrape_interval: 15s}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
  - static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
open("prom.yml", "w").write(cfg)
p = subprocess.Popen(["/usr/bin/prometheus", "--config.file=prom.yml", "--storage.tsdb.path=data",
                      "--web.listen-address=127.0.0.1:0", "--web.enable-lifecycle", "--rules.alert.resend-delay=2s"], stdout=open("p.log","w"), stderr=subprocess.STDOUT)
try:
    deadline = time.time() + 60
    while not got and time.time() < deadline: time.sleep(0.2)
    deadline = time.time() + 40
    while time.time() < deadline: time.sleep(0.5)
finally:
    p.terminate(); p.wait()
firing = next((t, b) for t, b in got if json.loads(b)[0]["endsAt"] > json.loads(b)[0]["startsAt"] and t < __import__("datetime").datetime.fromisoformat(json.loads(b)[0]["endsAt"].replace("Z", "+00:00")).timestamp())
resolved = next((t, b) for t, b in got if t >= __import__("datetime").datetime.fromisoformat(json.loads(b)[0]["endsAt"].replace("Z", "+00:00")).timestamp())
out = [{"what": w, "received_at": round(t, 3), "body": b.decode()} for w, (t, b) in (("firing", firing), ("resolved", resolved))]
json.dump({"prometheus": sys.argv[1] if len(sys.argv) > 1 else "", "posts": out}, open(sys.argv[2] if len(sys.argv) > 2 else "out.json", "w"), indent=1)
print(json.dumps(out, indent=1))

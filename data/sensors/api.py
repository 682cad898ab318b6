"""Serves data/sensors/train.csv as a paginated JSON API on the loopback, for configs/sensors-http.yaml.

    SENSORS_API_TOKEN=t0ken python3 api.py [PORT]     # standard library only; default port 8765

GET /api/machines?page=N&per_page=K (N from 1, K default 500) answers
{"data": {"items": [{"readings": {"temperature": …, "pressure": …}, "site": …, "status": …}, …]},
 "meta": {"page": N}}; an empty `items` after the last page. Requests need
`Authorization: Bearer <SENSORS_API_TOKEN>`.
"""

import csv
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "train.csv")) as f:
    rows = [
        {"readings": {"temperature": float(r["temperature"]), "pressure": float(r["pressure"])}, "site": r["site"],
         "status": r["status"]}
        for r in csv.DictReader(f)
    ]
token = os.environ.get("SENSORS_API_TOKEN", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path != "/api/machines":
            return self.reply(404, {"error": "not found"})
        if self.headers.get("Authorization") != f"Bearer {token}":
            return self.reply(401, {"error": "unauthorized"})
        q = parse_qs(url.query)
        page, size = int(q.get("page", ["1"])[0]), int(q.get("per_page", ["500"])[0])
        items = rows[(page - 1) * size:page * size]
        self.reply(200, {"data": {"items": items}, "meta": {"page": page}})

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8765), Handler).serve_forever()

"""A minimal FHIR endpoint for DiagnosticReport conditional updates, run as a process.

    python fhir_receiver.py RECEIVED_FILE

Prints "PORT <n>" once listening on loopback. `PUT /DiagnosticReport?identifier=S|V` with a
DiagnosticReport body answers 201 the first time an identifier is seen and 200 after
(the stored resource is replaced); every accepted request is appended to RECEIVED_FILE
as {"identifier", "authorization", "resource"}. Anything else answers 400 with an
OperationOutcome.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SEEN: set[str] = set()


class Handler(BaseHTTPRequestHandler):
    received: Path

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        parts = urlsplit(self.path)
        identifier = parse_qs(parts.query).get("identifier", [""])[0]
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        wanted = parts.path == "/DiagnosticReport" and body.get("resourceType") == "DiagnosticReport"
        if not (wanted and identifier):
            self._answer(400, {"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "invalid", "diagnostics": "expected a DiagnosticReport"}]})
            return
        with self.received.open("a") as out:
            out.write(json.dumps({"identifier": identifier, "resource": body,
                                  "authorization": self.headers.get("Authorization", "")}) + "\n")
        status = 200 if identifier in SEEN else 201
        SEEN.add(identifier)
        self._answer(status, body)

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    Handler.received = Path(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()

"""A stand-in for the embedded model server process that dies of SIGILL on some CPU variants.

    python -m zhiwen.testing.sigill_server --model_alias A --port P ...   # llama_serve's arguments

It dies of SIGILL, as a llama.cpp variant using an instruction the CPU refuses does, unless
``ZHIWEN_LLAMA_CPU_VARIANT`` names one of the comma-separated variants in ``SIGILL_SERVER_SURVIVES``; then it
answers ``GET /v1/models`` with the alias, which is all the start-up wait asks. Each start appends the variant
it was given (or ``auto``) to the file ``SIGILL_SERVER_STARTS``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from zhiwen.tools.cpu_backends import VARIANT_ENV


def _option(name: str) -> str:
    return sys.argv[sys.argv.index(name) + 1]


def main() -> None:
    variant = os.environ.get(VARIANT_ENV) or "auto"
    with open(os.environ["SIGILL_SERVER_STARTS"], "a", encoding="utf-8") as f:
        f.write(variant + "\n")
    if variant not in os.environ.get("SIGILL_SERVER_SURVIVES", "").split(","):
        os.kill(os.getpid(), signal.SIGILL)
    alias = _option("--model_alias")
    body = json.dumps({"object": "list", "data": [{"id": alias, "object": "model"}]}).encode()

    class Models(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    HTTPServer(("127.0.0.1", int(_option("--port"))), Models).serve_forever()


if __name__ == "__main__":
    main()

"""A rerank endpoint for tests, speaking the rerank (vLLM/Jina/Cohere), TEI and score shapes on loopback.

It scores a passage 1.0 when it holds ``favourite`` and 0.0 otherwise, and records what it received;
``status``, ``delay`` and ``garbage`` make it fail the ways real servers do.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedReranker"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the timeout tests) is expected, not a traceback on stderr."""


class ScriptedReranker:
    def __init__(self, favourite: str = "") -> None:
        self.favourite = favourite
        self.status = 200
        self.delay = 0.0
        self.garbage = False
        self.requests: list[tuple[str, dict[str, Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                owner.requests.append((self.path, body))
                time.sleep(owner.delay)
                texts = body.get("documents") or body.get("texts") or body.get("text_2") or []
                scores = [1.0 if owner.favourite and owner.favourite in t else 0.0 for t in texts]
                rows = [{"index": i, "score": s} for i, s in enumerate(scores)]
                if self.path.endswith("/score"):
                    reply: Any = {"data": rows}
                elif "texts" in body:
                    reply = rows
                else:
                    reply = {"results": [{"index": r["index"], "relevance_score": r["score"]} for r in rows]}
                data = b"not json" if owner.garbage else json.dumps(reply).encode()
                self.send_response(owner.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedReranker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

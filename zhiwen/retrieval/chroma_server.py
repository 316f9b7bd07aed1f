"""A shared Chroma server (``ZHIWEN_CHROMA_URL``) that does not answer, as one ``StoreUnavailable``.

chromadb reports a refused or timed-out connection as a bare ``ValueError`` ("Could not connect to a Chroma
server") or an httpx error, which reached the command line as a 100-line traceback and the HTTP server as a
500. Here it names the server (its password redacted) and says why, and the server answers 503.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from zhiwen.errors import StoreUnavailable, ZhiwenError, first_line
from zhiwen.settings import redact_url

__all__ = ["reaching_chroma"]


@contextlib.contextmanager
def reaching_chroma() -> Iterator[None]:
    """Turn a failure to reach the Chroma server into ``StoreUnavailable``; other errors pass unchanged.

    Without ``ZHIWEN_CHROMA_URL`` (Chroma embedded in the knowledge base's folder) nothing is turned."""
    try:
        yield
    except ZhiwenError:
        raise
    except Exception as exc:
        url = os.environ.get("ZHIWEN_CHROMA_URL")
        transport = _transport_failure(exc)
        if not url or transport is None:
            raise
        raise StoreUnavailable(
            f"cannot reach the Chroma server at {redact_url(url)}: {first_line(transport)}"
        ) from exc


def _transport_failure(exc: BaseException) -> BaseException | None:
    """The httpx connection error behind ``exc`` (itself, or what it was raised from or during), if any."""
    import httpx

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, httpx.TransportError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None

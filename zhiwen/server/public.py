"""What of a source the API may show: its file's name, never the server's folders.

Chunks keep the absolute path they were ingested from (the CLI and Studio show it to the person who ingested
them); over HTTP a path names the server's folders and users (``/srv/zhiwen/kbs/…/uploads/``,
``/home/ops/…``), so responses carry the file name, with a BEIR record's ``#id`` kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["public_source", "public_sources"]


def public_source(source: str) -> str:
    """``/srv/x/uploads/年费.md`` -> ``年费.md``; ``/data/corpus.jsonl#17`` -> ``corpus.jsonl#17``."""
    path, hash_, record = source.partition("#")
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return f"{name}{hash_}{record}"


def public_sources(sources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of sources or hits (``source`` and ``metadata.source``) without server paths."""
    shown = []
    for s in sources:
        copy = dict(s)
        if isinstance(copy.get("source"), str):
            copy["source"] = public_source(copy["source"])
        metadata = copy.get("metadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("source"), str):
            copy["metadata"] = {**metadata, "source": public_source(metadata["source"])}
        shown.append(copy)
    return shown

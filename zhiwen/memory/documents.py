"""The records that flow through ingestion: a loaded document and the chunks cut from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Chunk", "Document", "content_hash"]


def content_hash(text: str) -> str:
    """Hex SHA-256 of a text; the basis of document and chunk ids."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Document:
    """One document: a file, a page range of a PDF, or one record of a BEIR corpus.

    ``source`` identifies it for re-ingestion (same source + new text = replace); ``pages`` maps
    character offsets in ``text`` to PDF page numbers (start offset, page), when the format has pages.
    """

    source: str
    text: str
    title: str = ""
    doc_id: str = ""
    pages: tuple[tuple[int, int], ...] = ()
    is_passage: bool = False

    @property
    def id(self) -> str:
        return self.doc_id or content_hash(self.source)[:24]

    @property
    def sha256(self) -> str:
        return content_hash(self.title + "\0" + self.text)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, the unit both indexes store; its id derives from its content."""

    id: str
    doc_id: str
    text: str
    ordinal: int
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict)

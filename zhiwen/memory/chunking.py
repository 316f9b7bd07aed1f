"""Chinese-aware chunking: split at headings and sentence ends (。！？；.!?), pack, overlap.

Written here rather than taken from langchain-text-splitters because the spans must stay exact
(character offsets into the source for citations) and Chinese sentence ends carry no space.
"""

from __future__ import annotations

import re

from zhiwen.memory.documents import Chunk, Document, content_hash

__all__ = ["CHUNKER_VERSION", "chunk_document", "split_sentences"]

# Stored with each document: an ingest re-chunks documents chunked by an older version (only those
# whose chunks come out different are re-embedded). 2: sentences longer than a chunk are cut at line,
# clause or word breaks, with overlap, instead of every ``size`` characters mid-word.
CHUNKER_VERSION = 2

# ATX headings: "#" marks, then spaces or tabs (not a newline: a lone "#" line is no heading).
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
# A sentence ends after CJK terminators (with closing quotes), Latin terminators followed by space,
# or a blank line.
_SENT_END = re.compile(r"[。！？；!?][”’」』）)]*|[.;](?=\s)|\n\s*\n")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans (start, end) of the sentences of ``text[start:end]``, covering it without gaps."""
    stop = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for m in _SENT_END.finditer(text, start, stop):
        if m.end() > pos:
            spans.append((pos, m.end()))
            pos = m.end()
    if pos < stop:
        spans.append((pos, stop))
    return [(s, e) for s, e in spans if text[s:e].strip()]


# Where a sentence longer than a chunk may be cut, best first: a line end, a clause mark, a space.
_SOFT_BREAKS = (re.compile(r"\n"), re.compile(r"[，、,：:）)」』”’]"), re.compile(r"\s"))


def _break_after(text: str, lo: int, hi: int, latest: bool) -> int | None:
    """The position just after the best soft break in ``text[lo:hi]`` (the last of its kind when
    ``latest``, else the first), or None when there is none."""
    for pattern in _SOFT_BREAKS:
        ends = [m.end() for m in pattern.finditer(text, lo, hi)]
        if ends:
            return ends[-1] if latest else ends[0]
    return None


def _splits_a_word(text: str, pos: int) -> bool:
    return (
        0 < pos < len(text)
        and text[pos - 1].isascii()
        and text[pos - 1].isalnum()
        and (text[pos].isascii() and text[pos].isalnum())
    )


def _soft_split(text: str, s: int, e: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Pieces of at most ``size`` characters covering the over-long sentence ``text[s:e]``.

    Each piece ends at the last line, clause or word break of its second half (a Latin word is never
    cut unless it is half a chunk long; unpunctuated Chinese is cut anywhere) and the next one starts
    up to ``overlap`` characters earlier, at a break when there is one.
    """
    pieces: list[tuple[int, int]] = []
    start = s
    while e - start > size:
        end = _break_after(text, start + size // 2, start + size, latest=True) or start + size
        if _splits_a_word(text, end):
            word_start = end
            while word_start > start + size // 2 and _splits_a_word(text, word_start):
                word_start -= 1
            end = word_start if not _splits_a_word(text, word_start) else end
        pieces.append((start, end))
        back = max(end - overlap, start + 1)
        nxt = _break_after(text, back, end, latest=False) if overlap else None
        if nxt is None or nxt >= end:
            nxt = back if overlap else end
            while nxt < end and _splits_a_word(text, nxt):
                nxt += 1
        start = nxt
    pieces.append((start, e))
    return pieces


def _sections(text: str) -> list[tuple[int, int, str]]:
    """Markdown sections (start, end, heading); text before the first heading has heading ''."""
    marks = [(m.start(), m.group(1).strip()) for m in _HEADING.finditer(text)]
    if not marks or marks[0][0] > 0:
        marks.insert(0, (0, ""))
    ends = [m[0] for m in marks[1:]] + [len(text)]
    return [(s, e, h) for (s, h), e in zip(marks, ends)]


def _page_of(doc: Document, offset: int) -> int | None:
    page = None
    for start, number in doc.pages:
        if start <= offset:
            page = number
    return page


def chunk_document(doc: Document, size: int = 600, overlap: int = 100) -> list[Chunk]:
    """Cut ``doc`` into chunks of at most about ``size`` characters with ``overlap`` characters of context.

    A BEIR passage (``doc.is_passage``) shorter than ``4 * size`` stays one chunk, as its corpus intends.
    """
    text = doc.text
    if not text.strip():
        return []
    pieces: list[tuple[int, int, str]] = []
    if doc.is_passage and len(text) <= 4 * size:
        pieces.append((0, len(text), doc.title))
    else:
        for sec_start, sec_end, heading in _sections(text):
            current: tuple[int, int] | None = None
            for s, e in split_sentences(text, sec_start, sec_end):
                for hs, he in _soft_split(text, s, e, size, overlap) if e - s > size else [(s, e)]:
                    if current is None:
                        current = (hs, he)
                    elif he - current[0] <= size:
                        current = (current[0], he)
                    else:
                        pieces.append((*current, heading))
                        back = max(current[1] - overlap, current[0])
                        # Start the overlap at a sentence boundary inside the previous chunk when possible.
                        starts = [a for a, _ in split_sentences(text, current[0], current[1]) if a >= back]
                        ov_start = starts[0] if starts and starts[0] < hs else hs
                        current = (ov_start if he - ov_start <= size else hs, he)
            if current is not None:
                pieces.append((*current, heading))
    chunks = []
    digest = doc.sha256  # hashes the whole text: once, not per chunk (that made chunking quadratic)
    for ordinal, (s, e, heading) in enumerate(pieces):
        body = text[s:e].strip()
        if not body:
            continue
        embedded = f"{doc.title}\n{body}" if doc.is_passage and doc.title else body
        meta: dict[str, str | int] = {"source": doc.source, "title": doc.title, "start": s, "end": e}
        if heading:
            meta["heading"] = heading
        page = _page_of(doc, s)
        if page is not None:
            meta["page"] = page
        # The document id is part of the chunk id: two documents with the same text (copied files,
        # duplicate corpus passages) must not share chunk rows or vectors.
        cid = content_hash(f"{doc.id}:{digest}:{ordinal}:{embedded}")[:32]
        chunks.append(Chunk(cid, doc.id, embedded, ordinal, s, e, meta))
    return chunks

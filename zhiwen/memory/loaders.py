"""Read files into Documents: .txt, .md, .html/.htm, .pdf (pypdf) and BEIR corpus .jsonl.

``iter_paths`` expands folders; ``load_path`` raises ``UnsupportedFile`` with a reason a user can act on,
and opens nothing but regular files.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from zhiwen.errors import UnsupportedFile, first_line
from zhiwen.memory.documents import Document
from zhiwen.memory.encodings import declared_html_charset, decode_text
from zhiwen.memory.source_names import source_name

__all__ = ["SUPPORTED_SUFFIXES", "iter_paths", "load_path"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")


def iter_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Paths named directly, and everything but folders under named folders (sorted, hidden ones skipped).

    FIFOs, sockets and broken links under a folder are yielded too, for ``load_path`` to refuse by name
    (they were left out without a word). Paths are made absolute (``..`` folded, symlinks kept): a document
    is known by its path, and ``docs/a.md``, ``./docs/a.md`` and ``/data/docs/a.md`` typed on different days
    are one document.
    """
    for typed in paths:
        path = Path(os.path.abspath(typed))
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path)
                if not child.is_dir() and not any(part.startswith(".") for part in rel.parts):
                    yield child
        else:
            yield path


def _read_text(path: Path) -> str:
    return decode_text(path.read_bytes(), source_name(path))


_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "iso8859-1": "cp1252",
}  # read as their supersets


def _read_html(path: Path) -> str:
    """An HTML file's text in the encoding its ``<meta charset>`` declares, else as any text file."""
    raw = path.read_bytes()
    declared = declared_html_charset(raw)
    with contextlib.suppress(UnicodeDecodeError):
        return raw.decode("utf-8")  # valid UTF-8 wins over a leftover legacy declaration
    if declared is not None and declared not in ("utf-8", "utf-16", "utf-32"):
        try:
            return raw.decode(_SUPERSETS.get(declared, declared))
        except (UnicodeError, LookupError):
            pass  # a wrong declaration: fall back to finding the encoding
    return decode_text(raw, source_name(path))


_log = logging.getLogger("zhiwen.ingest")

# Not the page's content: code, and the navigation, side bars and footers repeated on every page of a site.
_NOT_CONTENT = frozenset({"script", "style", "noscript", "template", "nav", "aside", "footer"})
_BLOCKS = frozenset({"p", "div", "section", "article", "main", "header", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr",
           "td", "th", "caption", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "figure", "figcaption",
           "title", "hr", "address", "details", "summary", "form", "fieldset", "legend", "body"})  # fmt: skip
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    """Whether an element's own attributes keep it off the screen: ``hidden``, ``display:none`` or
    ``visibility:hidden``. Text no reader sees is where injected instructions hide, and it answered
    questions with words the page never showed; classes hidden by a style sheet are not followed."""
    for name, value in attrs:
        if name == "hidden":  # not aria-hidden: that hides from screen readers what the screen shows
            return True
        if name == "style" and value and _HIDING_STYLE.search(value):
            return True
    return False


class _HTMLText(HTMLParser):
    """The text of a page, with line breaks at block elements only, read in one pass.

    Written on the standard library's tokenizer rather than BeautifulSoup: bs4 builds a tree and relinks it
    at every end tag, which is quadratic in the nesting depth (100,000 nested <div>s did not finish), and
    zhiwen needs only the text. get_text("\n") broke a line at every tag, so a sentence with a <b> or
    <span> in it ("安心贷的<b>年利率</b>为<span>3.65%</span>") was cut into pieces; here only blocks break.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping = 0  # inside script, style, nav...: not the page's content
        self._open: list[str] = []  # the elements open now, innermost last
        self._opened: Counter[str] = Counter()  # how many of each are open (a stray end tag is found in O(1))
        self._hidden_at = 0  # 1 + the place in ``_open`` of an element hidden from readers; 0: none
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            if self._open and (self._open[-1] == tag == "li" or (self._open[-1] == "p" and tag in _BLOCKS)):
                self._close(1)  # a new <li>, or a block after an open <p>, ends it: "<p hidden>x<p>y" shows y
            self._open.append(tag)
            self._opened[tag] += 1
            if not self._hidden_at and _hidden(attrs):
                self._hidden_at = len(self._open)
        if tag in _NOT_CONTENT:
            self._skipping += 1
        elif tag in _BLOCKS or tag == "br":
            self.parts.append("\n")
        self._in_title = self._in_title or tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if self._opened[tag]:  # closes it and every element left open inside it, as a browser does
            at = len(self._open) - 1
            while self._open[at] != tag:  # nearly always the innermost: no copy of a deep stack
                at -= 1
            self._close(len(self._open) - at)
        if tag in _NOT_CONTENT:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
        if tag == "title":
            self._in_title = False

    def _close(self, count: int) -> None:
        for _ in range(count):
            self._opened[self._open.pop()] -= 1
        if len(self._open) < self._hidden_at:
            self._hidden_at = 0

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        if not self._skipping and not self._hidden_at:
            self.parts.append(data)


def _load_html(path: Path) -> Document:
    reader = _HTMLText()
    reader.feed(_read_html(path))
    reader.close()
    title = " ".join("".join(reader.title).split()) or source_name(path.stem)
    lines = [" ".join(line.split()) for line in "".join(reader.parts).splitlines()]
    return Document(source=source_name(path), text="\n".join(line for line in lines if line), title=title)


def _load_pdf(path: Path) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PyPdfError

    name = source_name(path)
    with _pypdf_warnings() as warned:
        try:
            reader = PdfReader(str(path))
            parts: list[str] = []
            pages: list[tuple[int, int]] = []
            offset = 0
            unreadable: list[int] = []
            for number, page in enumerate(reader.pages, start=1):
                try:
                    text = (page.extract_text() or "").strip()
                except (FileNotDecryptedError, OSError):
                    raise
                except (
                    Exception
                ):  # one damaged page (a content stream nested past the parser) costs that page
                    unreadable.append(number)
                    text = ""
                pages.append((offset, number))
                parts.append(text)
                offset += len(text) + 2
            title = str(
                (reader.metadata.get("/Title") if reader.metadata else None) or source_name(path.stem)
            )
        except FileNotDecryptedError as exc:
            raise UnsupportedFile(
                f"{name}: encrypted with a password (open it and save a copy without one)"
            ) from exc
        except (PyPdfError, OSError, ValueError) as exc:
            raise UnsupportedFile(f"{name}: unreadable PDF ({_first_of(exc, warned)})") from exc
        except Exception as exc:  # pypdf raises arbitrary errors (TypeError, KeyError...) on damaged files
            raise UnsupportedFile(
                f"{name}: unreadable PDF ({type(exc).__name__}: {_first_of(exc, warned)})"
            ) from exc
    if unreadable:
        _log.warning(
            "%s: page(s) %s could not be read and were left out", name, ", ".join(map(str, unreadable))
        )
    return Document(source=name, text="\n\n".join(parts), title=title, pages=tuple(pages))


def _first_of(exc: BaseException, warned: list[str]) -> str:
    """The error's first line, and pypdf's first warning about the file when it gave one."""
    return first_line(exc) + (f"; {warned[0]}" if warned else "")


@contextlib.contextmanager
def _pypdf_warnings() -> Iterator[list[str]]:
    """pypdf's warnings about one file, kept for its error line: on their own they printed as bare lines
    ("EOF marker not found") that named no file."""
    caught: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record.getMessage())

    logger = logging.getLogger("pypdf")
    handler, propagated = Keep(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield caught
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagated


def _load_jsonl(path: Path) -> list[Document]:
    docs = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            rid, text = str(rec["_id"]), str(rec["text"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UnsupportedFile(
                f"{source_name(path)}:{lineno}: not a BEIR corpus line with _id and text ({exc})"
            ) from exc
        if len(rid) > MAX_ID_CHARS or not rid.strip() or _UNPRINTABLE_ID.search(rid):
            raise UnsupportedFile(
                f"{source_name(path)}:{lineno}: an _id must be 1 to {MAX_ID_CHARS} characters with no control "
                "character in it"
            )
        docs.append(
            Document(
                source=f"{source_name(path)}#{rid}",
                text=text,
                title=str(rec.get("title") or ""),
                doc_id=rid,
                is_passage=True,
            )
        )
    return docs


def load_path(path: Path) -> list[Document]:
    """The documents in one file; raises ``UnsupportedFile`` saying why it cannot be read.

    Documents and messages name the file by ``source_name(path)``: a name that is not UTF-8 is stored
    and shown with its odd bytes escaped, not refused (it crashed the whole ingest)."""
    name = source_name(path)
    _require_regular_file(path, name)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFile(
            f"{name}: unsupported file type {source_name(suffix) or '(none)'}; use {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        if suffix == ".pdf":
            docs = [_load_pdf(path)]
        elif suffix in (".html", ".htm"):
            docs = [_load_html(path)]
        elif suffix == ".jsonl":
            docs = _load_jsonl(path)
        else:
            text = _read_text(path)
            docs = [Document(source=name, text=text, title=_md_title(text) or source_name(path.stem))]
    except OSError as exc:
        raise UnsupportedFile(f"{name}: cannot read ({exc.strerror or exc})") from exc
    except UnsupportedFile:
        raise
    except Exception as exc:  # a parser's own failure on a hostile file costs that file, never the batch
        raise UnsupportedFile(f"{name}: unreadable ({type(exc).__name__}: {first_line(exc)[:200]})") from exc
    docs = [_storable(_without_invisible(d)) for d in docs]
    docs = [d for d in docs if d.text.strip()]
    if not docs:
        raise UnsupportedFile(f"{name}: empty (no text to index)")
    longest = max(len(d.text) for d in docs)
    if longest > MAX_DOCUMENT_CHARS:
        raise UnsupportedFile(
            f"{name}: too long ({longest:,} characters of text; at most {MAX_DOCUMENT_CHARS:,}): split it into parts"
        )
    return docs


MAX_ID_CHARS = 200
"""Longest ``_id`` a corpus line may give its document: the id is a key of the catalog's index (PostgreSQL
refused a 6,000-character one, and with it the whole ingest)."""
MAX_TITLE_CHARS = 300
"""A title longer than this is cut: it is written before every passage chunk, and a 300,000-character one froze
the server in the injection check, and again after each restart as its job ran once more."""
_UNPRINTABLE_ID = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(doc: Document) -> Document:
    """``doc`` with what no catalog can store taken out of its text and title (NUL, lone surrogates from a
    JSON escape or a PDF's metadata) and its title cut to ``MAX_TITLE_CHARS``: one such document failed the
    whole upload on PostgreSQL, every other file in it too."""
    title = _SURROGATE.sub("\ufffd", INVISIBLE.sub("", doc.title))
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1] + "…"
    text = _SURROGATE.sub("\ufffd", doc.text)  # one for one: page offsets still hold
    return doc if (title, text) == (doc.title, doc.text) else replace(doc, title=title, text=text)


MAX_DOCUMENT_CHARS = 5_000_000
"""Longest text one document may have (about 2,500 pages): one 50 MB line held the ingest, and the server's
single ingest worker, for hours of embedding."""

# Zero-width characters, the soft hyphen and bidirectional controls: invisible, yet "wi\u200bre" is no longer
# the word "wire" for keyword search, and a file of them alone was indexed as a document. NUL too: a text file
# with one past its first 8 KB (where binary files are told apart) was stored with it, and PostgreSQL
# refuses a NUL in text, so the whole ingest failed on a PostgreSQL catalog.
INVISIBLE = re.compile("[\x00\u00ad\u200b-\u200f\u2060\ufeff\u202a-\u202e\u2066-\u2069]")


def _without_invisible(doc: Document) -> Document:
    """``doc`` without invisible characters; its page offsets moved back by those removed before each."""
    if not INVISIBLE.search(doc.text):
        return doc
    removed = [m.start() for m in INVISIBLE.finditer(doc.text)]
    pages = tuple((start - bisect.bisect_left(removed, start), page) for start, page in doc.pages)
    return replace(doc, text=INVISIBLE.sub("", doc.text), pages=pages)


_SPECIAL = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
            (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"))  # fmt: skip


def _require_regular_file(path: Path, name: str) -> None:
    """``UnsupportedFile`` unless ``path`` is a regular file once links are followed.

    Checked before anything opens it: reading a FIFO waits for a writer forever (``zhiwen ingest pipe.txt``
    hung until killed), and a socket or a device is no document."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise UnsupportedFile(f"{name}: a broken link (what it points to does not exist)") from None
        raise UnsupportedFile(f"{name}: no such file or folder") from None
    except OSError as exc:  # a loop of links, a folder it may not look into
        raise UnsupportedFile(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        kind = next((what for test, what in _SPECIAL if test(mode)), "a special file")
        raise UnsupportedFile(f"{name}: not a regular file ({kind})")


def _md_title(text: str) -> str:
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()
    return ""

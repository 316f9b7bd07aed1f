"""Decode a text file's bytes: byte-order marks, then UTF-8, then the legacy encoding that reads cleanly.

Why not charset_normalizer (installed): on short or mixed Chinese, the documents this product is for, it
guessed cp949 for a GB18030 line with English in it and Big5 for a two-character GBK file (tried on
real strings). GB18030 alone, the old fallback, decodes nearly any bytes, so Big5 (Taiwan, Hong Kong) and
Windows-1252 files were indexed as nonsense without a word. Here each legacy candidate is decoded and
scored by the share of its non-ASCII characters that are common in that encoding; the best wins, and
a file no candidate reads cleanly is refused rather than indexed garbled.
"""

from __future__ import annotations

import codecs
import re

from zhiwen.errors import UnsupportedFile

__all__ = ["declared_html_charset", "decode_text"]

_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_LEGACY = ("gb18030", "big5hkscs", "cp1252")  # in order of preference on a tie
_CLEAN = 0.6  # the least share of common characters a legacy reading needs
_META_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_-]{2,40})", re.IGNORECASE)


def _common(char: str, encoding: str) -> bool:
    """Whether a non-ASCII character is one that real text in ``encoding`` uses often."""
    if encoding == "cp1252":
        return "\u00a0" <= char <= "\u00ff" or "\u2010" <= char <= "\u2026" or char in "€™"
    try:
        code = char.encode("gb2312" if encoding == "gb18030" else "big5hkscs")
    except UnicodeEncodeError:
        return False
    if len(code) != 2:
        return False
    if encoding == "gb18030":  # GB2312 punctuation rows (not kana, Greek, Cyrillic), level-1 hanzi
        return 0xA1 <= code[0] <= 0xA3 or code[0] == 0xA9 or 0xB0 <= code[0] <= 0xD7
    value = code[0] << 8 | code[1]  # Big5 symbols and its 5,401 frequently used hanzi
    return 0xA140 <= value <= 0xA3BF or 0xA440 <= value <= 0xC67E


def _legacy_score(raw: bytes, encoding: str) -> tuple[float, str] | None:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        return None
    wide = [c for c in text if ord(c) > 127 and not c.isspace()]
    if encoding == "cp1252" and len(wide) > 0.3 * sum(not c.isspace() for c in text):
        return None  # Western text is mostly ASCII; dense high bytes are a CJK encoding
    share = sum(_common(c, encoding) for c in wide) / len(wide) if wide else 1.0
    return share, text


def decode_text(raw: bytes, where: str) -> str:
    """The text of ``raw``; ``UnsupportedFile`` naming ``where`` when it is binary or reads garbled."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UnsupportedFile(
                    f"{where}: starts with a {encoding} byte-order mark but is not {encoding}"
                ) from exc
    if b"\x00" in raw[:8192]:
        utf16 = _utf16_without_bom(raw)
        if utf16 is None:
            raise UnsupportedFile(f"{where}: binary file (NUL bytes), not text")
        return utf16
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        if text.count("\ufffd") <= max(1, len(text) // 1000):
            return text  # UTF-8 with a stray bad byte, or cut mid-character: keep it, not refuse it
    best: tuple[float, str] | None = None
    for encoding in _LEGACY:
        scored = _legacy_score(raw, encoding)
        if scored is not None and (best is None or scored[0] > best[0]):
            best = scored
    if best is None or best[0] < _CLEAN:
        raise UnsupportedFile(
            f"{where}: not UTF-8, and neither GB18030, Big5 nor Windows-1252 reads it cleanly; save it as UTF-8"
        )
    return best[1]


_CONTROLS = re.compile("[\x00-\x08\x0b\x0e-\x1f]")


def _utf16_without_bom(raw: bytes) -> str | None:
    """``raw`` read as UTF-16 with no byte-order mark, when its NUL bytes and its reading say so; else None.

    Text in UTF-16 has a NUL beside every ASCII character, all on one side (odd offsets little-endian,
    even big-endian); a binary file has them on both. Such files (some exports and PowerShell redirects)
    were refused as binary. A stray NUL is on one side too, so the reading must also be text: no control
    character but tab and line breaks, and its other characters ASCII or common in Chinese or Western
    text ("abc\\x00def" read as UTF-16 is "扣d敦…", mostly rare hanzi)."""
    sample = raw[:8192]
    odd = sample[1::2].count(0)
    even = sample[0::2].count(0)
    if len(raw) % 2 or min(odd, even) > (odd + even) // 50:
        return None
    try:
        text = raw.decode("utf-16-le" if odd > even else "utf-16-be")
    except UnicodeDecodeError:
        return None
    if _CONTROLS.search(text):
        return None
    wide = [c for c in text[:4096] if ord(c) > 127 and not c.isspace()]
    common = sum(_common(c, "gb18030") or _common(c, "cp1252") for c in wide)
    return text if common >= _UTF16_COMMON * len(wide) else None


# Real text is nearly all common characters; bytes of another encoding read as UTF-16 are not.
_UTF16_COMMON = 0.9


_NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "mbcs", "oem"}
)


def declared_html_charset(raw: bytes) -> str | None:
    """The encoding an HTML file's ``<meta charset>`` names, if Python knows it."""
    match = _META_CHARSET.search(raw[:4096])
    if match is None:
        return None
    name = match.group(1).decode("ascii").lower()
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    # "base64", "rot13", "zlib", "unicode_escape": codecs Python knows that are no charset; one such
    # declaration ended a whole folder's ingest in a LookupError, every good file with it.
    if not getattr(codec, "_is_text_encoding", True) or codec.name in _NOT_CHARSETS:
        return None
    return codec.name

"""Chunking: Chinese sentence ends, headings, size limits, overlap, exact spans, stable ids, pages."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from zhiwen.memory.chunking import chunk_document, split_sentences
from zhiwen.memory.documents import Chunk, Document


def _texts(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[s:e] for s, e in spans]


def _check_spans(doc: Document, chunks: list[Chunk]) -> None:
    for c in chunks:
        assert doc.text[c.start : c.end].strip() == c.text
        assert (c.metadata["start"], c.metadata["end"]) == (c.start, c.end)
        assert c.metadata["source"] == doc.source
        assert c.metadata["title"] == doc.title
        assert c.doc_id == doc.id


def test_chinese_sentence_ends_split_without_spaces() -> None:
    text = "你好。我很好！真的吗？是的；最后一句"
    spans = split_sentences(text)
    assert _texts(text, spans) == ["你好。", "我很好！", "真的吗？", "是的；", "最后一句"]


def test_sentences_cover_text_without_gaps_and_keep_closing_quotes() -> None:
    text = "他说：“好的。”然后走了。Version 3.5 is out. Next one! ok"
    spans = split_sentences(text)
    assert "".join(_texts(text, spans)) == text
    assert _texts(text, spans)[0] == "他说：“好的。”"
    # A period inside a number is no sentence end; one followed by a space is.
    assert "Version 3.5 is out." in [t.strip() for t in _texts(text, spans)]


def test_markdown_headings_become_metadata() -> None:
    text = "前言没有标题。\n\n# 开户须知\n\n开户需要身份证。\n\n## Fees\n\nThe annual fee is 300 yuan.\n"
    doc = Document("kb/a.md", text, "A")
    chunks = chunk_document(doc, size=600)
    assert [c.metadata.get("heading") for c in chunks] == [None, "开户须知", "Fees"]
    assert chunks[1].text.startswith("# 开户须知")
    assert "annual fee" in chunks[2].text
    _check_spans(doc, chunks)


def test_lone_hash_line_is_not_a_heading() -> None:
    # "#" followed by a newline must not turn the next line into a heading.
    text = "#\n第一句。第二句。\n\n# 真标题\n内容。"
    chunks = chunk_document(Document("x.md", text, "x"), size=600)
    assert [c.metadata.get("heading") for c in chunks] == [None, "真标题"]


def test_chunks_never_exceed_size_and_overlap() -> None:
    text = "".join(f"第{i}句话讲的是银行业务的细节内容。" for i in range(60))
    doc = Document("long.txt", text, "long")
    chunks = chunk_document(doc, size=120, overlap=40)
    assert len(chunks) > 5
    assert all(c.end - c.start <= 120 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks of a long text overlap"
        assert a.end - b.start <= 40 + 20  # about ``overlap`` characters, at a sentence boundary
        overlap = text[b.start : a.end]
        assert a.text.endswith(overlap.strip()) and b.text.startswith(overlap.strip())
        assert text[b.start - 1] == "。", "overlap starts at a sentence boundary"
    _check_spans(doc, chunks)
    # Every character of the document is in some chunk.
    covered = set().union(*(range(c.start, c.end) for c in chunks))
    assert covered == set(range(len(text)))


def test_unbreakable_text_is_hard_split() -> None:
    text = "x" * 1000 + "。短句。" + "字" * 450
    doc = Document("blob.txt", text, "")
    chunks = chunk_document(doc, size=200, overlap=50)
    assert all(len(c.text) <= 200 for c in chunks)
    assert "".join(c.text for c in chunks[:5]) == "x" * 1000
    _check_spans(doc, chunks)


def test_long_unpunctuated_lines_are_cut_between_words_with_overlap() -> None:
    # pypdf output and lists: lines without sentence ends. Version 1 cut every 600 characters mid-word.
    words = itertools.cycle(
        ["account", "transfer", "limit", "daily", "international", "settlement", "currency"]
    )
    lines = [" ".join(next(words) for _ in range(9)) for _ in range(60)]
    text = "\n".join(lines)
    doc = Document("scan.txt", text, "scan")
    chunks = chunk_document(doc, size=600, overlap=100)
    assert len(chunks) > 4
    for a, b in itertools.pairwise(chunks):
        assert text[a.end - 1] == "\n" or a.end == len(text), "a chunk ends at a line end"
        assert text[b.start - 1] == "\n", "the next one starts at a line start"
        assert 0 < a.end - b.start <= 100, "and repeats the end of the one before"
    assert all(c.end - c.start <= 600 for c in chunks)
    _check_spans(doc, chunks)


def test_long_sentence_without_lines_is_cut_at_clause_then_word_breaks() -> None:
    clauses = "，".join(f"第{i}项费用按照合同约定收取" for i in range(40)) + "。"
    doc = Document("fees.txt", clauses, "fees")
    chunks = chunk_document(doc, size=120, overlap=30)
    assert all(clauses[c.end - 1] in "，。" for c in chunks), "cut after a clause mark"
    english = " ".join(["interchange"] * 200)
    chunks = chunk_document(Document("e.txt", english, "e"), size=100, overlap=25)
    for c in chunks:
        assert set(c.text.split()) == {"interchange"}, "no word is cut"
    for a, b in itertools.pairwise(chunks):
        assert 0 < a.end - b.start <= 25


def test_unpunctuated_chinese_is_cut_anywhere_with_overlap() -> None:
    text = "".join(chr(0x4E00 + (i * 7) % 500) for i in range(1000))
    doc = Document("cjk.txt", text, "cjk")
    chunks = chunk_document(doc, size=200, overlap=50)
    assert all(c.end - c.start <= 200 for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert a.end - b.start == 50
    _check_spans(doc, chunks)


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=list("ab 中文字。！？；.!\n#，,"), max_size=700),
    st.integers(min_value=20, max_value=200),
    st.integers(min_value=0, max_value=60),
)
def test_chunk_properties(text: str, size: int, overlap: int) -> None:
    doc = Document("p.txt", text, "P")
    chunks = chunk_document(doc, size=size, overlap=overlap)
    _check_spans(doc, chunks)
    assert all(c.end - c.start <= size for c in chunks)
    assert [c.ordinal for c in chunks] == sorted(c.ordinal for c in chunks)
    assert len({c.id for c in chunks}) == len(chunks)
    covered = set().union(set(), *(range(c.start, c.end) for c in chunks))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_chunk_ids_are_deterministic_and_follow_content() -> None:
    text = "第一段内容。" * 50 + "\n\n" + "Second part of the text. " * 40
    doc = Document("d.txt", text, "D")
    first = chunk_document(doc, size=200)
    assert [c.id for c in first] == [c.id for c in chunk_document(Document("d.txt", text, "D"), size=200)]
    changed = chunk_document(Document("d.txt", text.replace("Second", "Third"), "D"), size=200)
    assert not {c.id for c in first} & {c.id for c in changed}
    # Same text in another file: another document, so other chunk ids (no shared rows or vectors).
    copy = chunk_document(Document("copy-of-d.txt", text, "D"), size=200)
    assert [c.text for c in copy] == [c.text for c in first]
    assert not {c.id for c in first} & {c.id for c in copy}


def test_pdf_pages_become_metadata() -> None:
    p1 = "First page sentence one. First page sentence two."
    p2 = "Second page sentence one. Second page sentence two."
    text = p1 + "\n\n" + p2
    doc = Document("doc.pdf", text, "PDF", pages=((0, 1), (len(p1) + 2, 2)))
    chunks = chunk_document(doc, size=30, overlap=0)
    assert [c.metadata["page"] for c in chunks] == [1, 1, 2, 2]
    assert chunks[2].text == "Second page sentence one."
    _check_spans(doc, chunks)


def test_beir_passages_stay_whole_with_title_prefix() -> None:
    doc = Document(
        "c.jsonl#7", "A short passage. It has two sentences.", "Passage title", "7", is_passage=True
    )
    (chunk,) = chunk_document(doc, size=20)
    assert chunk.text == "Passage title\nA short passage. It has two sentences."
    assert (chunk.start, chunk.end) == (0, len(doc.text))
    assert chunk.doc_id == "7"
    long = Document("c.jsonl#8", "Long passage sentence. " * 10, "T", "8", is_passage=True)
    parts = chunk_document(long, size=50, overlap=0)
    assert len(parts) > 1
    for c in parts:
        assert c.text.startswith("T\n")
        assert long.text[c.start : c.end].strip() == c.text.removeprefix("T\n")


def test_blank_documents_have_no_chunks() -> None:
    assert chunk_document(Document("e.txt", " \n\t ", "")) == []

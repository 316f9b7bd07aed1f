"""The BM25 tokenizer: Chinese segmentation modes, English stemming and stop words."""

from __future__ import annotations

import pytest

from zhiwen.tools.bm25 import BM25Index
from zhiwen.tools.tokenize import CJK_MODES, CjkMode, tokenize

MIXED = "我们在银行开户的时候需要身份证。Opening accounts requires passports."


def test_mixed_chinese_and_english() -> None:
    tokens = tokenize(MIXED, "jieba")
    assert tokens == [
        "我们",
        "银行",
        "开户",
        "时候",
        "需要",
        "身份证",
        "open",
        "account",
        "requir",
        "passport",
    ]


def test_english_is_lowercased_stemmed_and_stop_words_dropped() -> None:
    assert tokenize("The Running runners ran QUICKLY to the banks") == [
        "run",
        "runner",
        "ran",
        "quick",
        "bank",
    ]
    assert tokenize("the of and is it not") == []
    assert tokenize("Version 3.5, 2024") == ["version", "3", "5", "2024"]


def test_chinese_stop_words_dropped_from_words() -> None:
    tokens = tokenize("什么是信用卡的年费", "jieba")
    assert "什么" not in tokens and "的" not in tokens and "是" not in tokens
    assert "信用卡" in tokens and "年费" in tokens


def test_full_width_latin_and_digits_fold_to_ascii() -> None:
    assert tokenize("ＡＴＭ取款２０２４年", "jieba") == tokenize("ATM取款2024年", "jieba")
    assert "atm" in tokenize("ＡＴＭ") and "2024" in tokenize("２０２４")


def test_punctuation_and_empty() -> None:
    assert tokenize("") == []
    assert tokenize("。！？……——，、 ...!!!") == []


def test_each_cjk_mode() -> None:
    text = "身份证办理"
    jieba = tokenize(text, "jieba")
    search = tokenize(text, "search")
    bigram = tokenize(text, "bigram")
    both = tokenize(text, "search+bigram")
    assert "身份证" in jieba and "身份" not in jieba
    assert {"身份", "身份证"} <= set(search)  # search mode adds the shorter words inside long ones
    assert set(bigram) == {"身", "份", "证", "办", "理", "身份", "份证", "证办", "办理"}
    assert set(both) == set(search) | {"身份", "份证", "证办", "办理"}
    assert not any(len(t) == 1 for t in both), "search+bigram adds bigrams, not single characters"


def test_bigram_mode_drops_single_character_stop_words() -> None:
    tokens = tokenize("我的卡", "bigram")
    assert "的" not in tokens
    assert {"我的", "的卡"} <= set(tokens)


@pytest.mark.parametrize("mode", CJK_MODES)
def test_same_tokens_at_index_and_query_time(mode: CjkMode) -> None:
    docs = [
        "境外汇款通常三个工作日到账。",
        "信用卡金卡的年费是三百元。",
        "Mortgage rates are fixed for five years.",
        MIXED,
    ]
    assert [tokenize(d, mode) for d in docs] == [tokenize(d, mode) for d in docs], "deterministic"
    index = BM25Index.build([f"d{i}" for i in range(len(docs))], [tokenize(d, mode) for d in docs])
    for i, query in enumerate(["汇款到账", "金卡年费", "mortgage rate", "开户 passport"]):
        hits = index.search(tokenize(query, mode), 4)
        assert hits and hits[0].id == f"d{i}", (mode, query, hits)

"""Answer metrics against hand-computed values: SQuAD (en), CMRC (zh) and RGB-style containment."""

from __future__ import annotations

import pytest

from zhiwen.evals.answer_metrics import (
    containment,
    exact_match,
    f1,
    normalize_en,
    normalize_zh,
    score_answer,
)

# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),  # case and article
        ("  a  cat,   an owl and THE dog!  ", "cat owl and dog"),  # articles anywhere, white space squeezed
        ("Theatre; another anthem.", "theatre another anthem"),  # "the"/"an" inside words stay
        ("U.S.A. (1776)", "usa 1776"),  # punctuation dropped, not turned into spaces
        ("", ""),
    ],
)
def test_normalize_en_follows_squad(text: str, expected: str) -> None:
    assert normalize_en(text) == expected


def test_normalize_zh_drops_chinese_and_latin_punctuation_and_space() -> None:
    assert normalize_zh("《红楼梦》的作者是 曹雪芹。") == "红楼梦的作者是曹雪芹"
    assert normalize_zh(" 2014 年\u3000") == "2014年"
    # one space stays between two Latin words or numbers: they must not merge into one
    assert normalize_zh("iPhone 15，“Pro”！") == "iphone 15pro"
    assert normalize_zh("New \t York  2024") == "new york 2024"


def test_exact_match_chinese_keeps_latin_words_apart() -> None:
    assert exact_match("New York", ["newyork"], "zh") == 0.0
    assert exact_match("New  York！", ["new york"], "zh") == 1.0


# --- exact match --------------------------------------------------------------------------------


def test_exact_match_english_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("The Eiffel tower.", ["Eiffel Tower"], "en") == 1.0
    assert exact_match("Eiffel Tower in Paris", ["Eiffel Tower"], "en") == 0.0


def test_exact_match_takes_any_alternative_including_slot_lists() -> None:
    assert exact_match("Paris", ["Lyon", "paris"], "en") == 1.0
    assert exact_match("巴黎", [["里昂"], ["巴黎", "巴黎市"]], "zh") == 1.0


def test_exact_match_chinese_ignores_punctuation() -> None:
    assert exact_match("北京，上海。", ["北京上海"], "zh") == 1.0
    assert exact_match("北京", ["北京市"], "zh") == 0.0


# --- F1 -----------------------------------------------------------------------------------------


def test_f1_english_tokens() -> None:
    # pred [in, paris, france], gold [paris]: P = 1/3, R = 1 -> F1 = 2 * (1/3) / (4/3) = 1/2
    assert f1("in Paris, France", ["Paris"], "en") == pytest.approx(0.5)
    # Articles do not count as tokens: pred [eiffel, tower, was, completed] vs gold [eiffel, tower]
    # P = 2/4, R = 1 -> F1 = 2/3
    assert f1("The Eiffel Tower was completed", ["the Eiffel Tower"], "en") == pytest.approx(2 / 3)


def test_f1_english_counts_repeated_tokens_once_per_occurrence() -> None:
    # pred [x, y, y], gold [y, y, z]: common = 2 -> P = R = 2/3 -> F1 = 2/3
    assert f1("x y y", ["y y z"], "en") == pytest.approx(2 / 3)
    # pred [y, y], gold [y]: common = 1 -> P = 1/2, R = 1 -> F1 = 2/3
    assert f1("y y", ["y"], "en") == pytest.approx(2 / 3)


def test_f1_takes_the_best_alternative() -> None:
    # vs "Lyon": 0; vs "in Paris": pred [paris] gold [in, paris] -> P = 1, R = 1/2 -> 2/3
    assert f1("Paris", ["Lyon", "in Paris"], "en") == pytest.approx(2 / 3)


def test_f1_no_overlap_is_zero() -> None:
    assert f1("London", ["Paris"], "en") == 0.0


def test_f1_chinese_characters() -> None:
    # pred [北, 京, 大, 学], gold [北, 京]: P = 1/2, R = 1 -> F1 = 2/3
    assert f1("北京大学", ["北京"], "zh") == pytest.approx(2 / 3)
    # punctuation is not a unit: pred [北, 京] (。 dropped) -> exact
    assert f1("北京。", ["北京"], "zh") == pytest.approx(1.0)


def test_f1_chinese_keeps_latin_words_and_numbers_whole() -> None:
    # pred [2008, 年, 北, 京, 奥, 运, 会] (7 units), gold [2008, 年] (2 units): common 2
    # P = 2/7, R = 1 -> F1 = 2 * (2/7) / (9/7) = 4/9
    assert f1("2008年北京奥运会", ["2008年"], "zh") == pytest.approx(4 / 9)
    # A number is one unit: "2018" vs "2008" share no unit (split into digits they would share 3)
    assert f1("2018年", ["2008年"], "zh") == pytest.approx(0.5)
    # pred [iphone, 手, 机] (space dropped, lower-cased), gold [iphone]: P = 1/3, R = 1 -> 1/2
    assert f1("iPhone 手机", ["IPHONE"], "zh") == pytest.approx(0.5)


def test_f1_chinese_counts_the_longest_common_run_not_scattered_characters() -> None:
    # CMRC's find_lcs: "京北" and "北京" share no run longer than one character -> P = R = 1/2
    assert f1("京北", ["北京"], "zh") == pytest.approx(0.5)
    # gold [北, 京, 大, 学]; the prediction holds each character, but the longest run is [大, 学]:
    # P = 2/6, R = 2/4 -> F1 = 0.4 (a bag-of-characters overlap would give 4/6, 4/4 -> 0.8)
    assert f1("北方京城大学", ["北京大学"], "zh") == pytest.approx(0.4)


def test_f1_chinese_keeps_latin_words_apart() -> None:
    # [new, york, 时, 报] vs gold [new, york]: run of 2 -> P = 1/2, R = 1 -> 2/3 (not "newyork" as one unit)
    assert f1("New York 时报", ["new york"], "zh") == pytest.approx(2 / 3)
    assert f1("York New", ["new york"], "zh") == pytest.approx(0.5)


# --- containment --------------------------------------------------------------------------------


def test_containment_alternatives_style() -> None:
    assert containment("He was born in Paris, France.", ["Lyon", "paris"], "en") == 1.0
    assert containment("He was born in Paris, France.", ["Lyon", "Nice"], "en") == 0.0
    # normalisation applies to both sides: article and punctuation in the gold do not matter
    assert containment("It flows into the Atlantic Ocean.", ["the Atlantic, Ocean"], "en") == 1.0


def test_containment_alternatives_style_flattens_slot_lists() -> None:
    assert containment("答案是中国队。", [["美国队"], ["中国", "中国队"]], "zh", slots_style=False) == 1.0


def test_containment_slots_style_needs_every_slot() -> None:
    pred = "The members are France and Germany."
    assert containment(pred, ["France", "Germany", "Italy"], "en", slots_style=True) == pytest.approx(2 / 3)
    assert containment(pred, ["France", "Germany"], "en", slots_style=True) == 1.0
    # the same gold as alternatives: one hit is enough
    assert containment(pred, ["France", "Germany", "Italy"], "en", slots_style=False) == 1.0


def test_containment_slots_with_alternative_spellings() -> None:
    gold = [["USA", "United States"], ["UK", "United Kingdom"]]
    assert containment("The United States and Britain.", gold, "en", slots_style=True) == 0.5
    assert containment("The USA and the United Kingdom.", gold, "en", slots_style=True) == 1.0
    zh_gold = [["中国", "中国队"], "日本"]
    assert containment("冠军是中国队，亚军是美国队。", zh_gold, "zh", slots_style=True) == 0.5


def test_containment_needs_whole_numbers_and_words() -> None:
    assert containment("It was completed in 1889.", ["1"], "en") == 0.0
    assert containment("It was completed in 1889.", ["1889"], "en") == 1.0
    assert containment("A comparison of the two.", ["paris"], "en") == 0.0
    assert containment("He scored 24 points.", ["24"], "en") == 1.0
    # Chinese has no spaces: a number next to Chinese characters still counts, a longer number does not
    assert containment("共有2015年的数据", ["2015"], "zh") == 1.0
    assert containment("共有20150人", ["2015"], "zh") == 0.0
    assert containment("冠军是中国队", ["中国"], "zh") == 1.0
    # ... and a number or word set apart by a space is whole (XQuAD-zh: "2014 MLS赛季后停赛")
    assert containment("2014 MLS赛季后停赛", ["2014"], "zh") == 1.0
    assert containment("其中68,511 (43.3%)户", ["68,511"], "zh") == 1.0
    assert containment("获奖者是 Annie Ernaux", ["Ernaux"], "zh") == 1.0
    assert containment("获奖者是 Annie Ernauxx", ["Ernaux"], "zh") == 0.0


def test_score_answer_drops_citation_marks_first() -> None:
    scores = score_answer("Paris [1]", ["Paris"], "en", slots_style=False)
    assert scores == {"em": 1.0, "f1": 1.0, "containment": 1.0}
    # a citation's number is not the answer "12"
    assert score_answer("It is in Paris [12].", ["12"], "en", slots_style=False)["containment"] == 0.0


@pytest.mark.parametrize("prediction", ["", "   ", "。！", "..."])
@pytest.mark.parametrize("language", ["en", "zh"])
def test_empty_prediction_scores_zero(prediction: str, language: str) -> None:
    gold = ["Paris", "巴黎"]
    assert exact_match(prediction, gold, language) == 0.0
    assert f1(prediction, gold, language) == 0.0
    assert containment(prediction, gold, language) == 0.0
    assert containment(prediction, gold, language, slots_style=True) == 0.0


def test_empty_gold_scores_zero() -> None:
    assert f1("Paris", [], "en") == 0.0
    assert exact_match("Paris", [], "en") == 0.0
    assert containment("Paris", [], "en") == 0.0
    assert containment("Paris", [], "en", slots_style=True) == 0.0

"""The gate's fall-back quote: the source sentence that states what was asked, or nothing."""

from __future__ import annotations

from zhiwen.tools.quote import MAX_QUOTE_CHARS, Quote, closest_sentence

TOWN = "澉浦镇\n澉浦镇是隶属于浙江省嘉兴市海盐县的一个镇，位于该县县境南部。澉浦镇的人口为15518人。"


def test_the_sentence_that_states_the_asked_property_is_quoted_not_the_one_naming_the_subject() -> None:
    quote = closest_sentence("澉浦镇的人口是多少？", [("安心贷最高额度为二十万元。", ""), (TOWN, "澉浦镇")])
    assert quote == Quote(2, "澉浦镇的人口为15518人。", 1.0)


def test_a_passage_that_only_names_the_subject_is_not_quoted() -> None:
    defined = "澉浦镇\n澉浦镇是隶属于浙江省嘉兴市海盐县的一个镇，位于该县县境南部。"
    assert closest_sentence("澉浦镇的人口是多少？", [(defined, "澉浦镇")]) is None


def test_questions_that_name_a_year_figure_or_code_are_never_quoted() -> None:
    # Near-miss passages state the asked slot for another year or product: the hard negatives.
    sources = [("2021年，宝马集团在中国市场的销量已占全球销量的近34%。", "")]
    assert closest_sentence("2021年宝马全球销量是多少？", sources) is None
    assert closest_sentence("M1芯片的晶体管数量是多少？", [("M1芯片的晶体管数量为160亿个。", "")]) is None
    assert closest_sentence("宝马全球销量是多少？", sources) is not None  # the same, asked without a year


def test_english_questions_are_matched_by_words() -> None:
    sources = [
        ("Wire transfers\nInternational wire transfers take three business days. The fee is 15 dollars.", "")
    ]
    quote = closest_sentence("How long do international wire transfers take?", sources)
    assert quote is not None and quote.text == "International wire transfers take three business days."


def test_titles_questions_without_topic_and_run_on_text_are_never_quoted() -> None:
    assert (
        closest_sentence("金卡年费", [("金卡年费\n首年免收。", "金卡年费")]) is None
    )  # only the title holds it
    assert closest_sentence("什么？", [("什么都有。", "")]) is None
    run_on = "金卡的年费" + "和其他费用" * (MAX_QUOTE_CHARS // 5) + "。"
    assert closest_sentence("金卡的年费是多少？", [(run_on, "")]) is None

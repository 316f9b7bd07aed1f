"""The gate's fall-back quote: the source sentence that states what was asked, or nothing."""

from __future__ import annotations

from zhiwen.tools.quote import MAX_QUOTE_CHARS, Quote, asks_when, closest_sentence, states_a_time

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


def test_a_when_question_is_quoted_only_with_a_sentence_that_states_a_time() -> None:
    launch = [("神舟十六号\n一起期待神舟十六号发射！神舟十六号发射时间尚未公布。", "")]
    assert closest_sentence("神舟十六号发射时间？", launch) is None  # "十六号" is the craft, not a date
    dated = [("神舟十六号\n神舟十六号于5月30日9时31分发射。", "")]
    quote = closest_sentence("神舟十六号的发射时间？", dated)
    assert quote is not None and quote.text == "神舟十六号于5月30日9时31分发射。"
    exchange = [("Warsaw's first stock exchange was established in 1817 and traded until World War II.", "")]
    assert closest_sentence("When was Warsaw's first stock exchange established?", exchange) is not None
    undated = [("Warsaw's first stock exchange was established by merchants of the old town.", "")]
    assert closest_sentence("When was Warsaw's first stock exchange established?", undated) is None
    assert closest_sentence("Who established Warsaw's first stock exchange?", undated) is not None


def test_what_counts_as_asking_when_and_as_stating_a_time() -> None:
    assert all(
        map(asks_when, ["硅谷银行破产时间", "尚恩什么时候决定当演员？", "In what year did it open?", "When?"])
    )
    assert not any(map(asks_when, ["缩短时间的方法有哪些？", "Who won?", "How long does a transfer take?"]))
    assert states_a_time("就在那一刻他决定要当个演艺人员。", "尚恩什么时候决定当演员？")
    assert states_a_time("Republicans only became supportive when Germany started to build.", "When did ...?")
    assert states_a_time("马克龙于4月5日抵达北京。", "马克龙访华时间？")
    assert not states_a_time("马克龙带领商业代表团访华。", "马克龙访华时间？")

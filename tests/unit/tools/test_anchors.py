"""The anchor check: an answer must come from a sentence about the asked year, date or model."""

from __future__ import annotations

from zhiwen.tools.anchors import anchored, figures_on_topic, question_anchors

BMW_2022 = (
    "宝马集团2022年全球销量为240万辆，纯电动汽车销量大涨108%。"
    "主要影响体现在2022年前6个月，当时宝马集团在全球的交付量较2021年同期有所下降。"
)
BMW_2021 = "2021年，宝马集团业绩强劲。全年全球共交付2,521,525辆汽车，同比增长8.4%。"


def test_question_anchors_split_numbers_and_codes() -> None:
    assert question_anchors("2021年宝马全球销量？") == ({"2021"}, set())
    assert question_anchors("10·29索马里首都汽车炸弹爆炸死亡人数") == ({"10", "29"}, set())
    assert question_anchors("苹果M1芯片首席设计师去了哪家公司") == (set(), {"m1"})
    assert question_anchors("Who won the 2022 CVPR best paper?") == ({"2022"}, set())
    assert question_anchors("中国第三艘航母名字") == (set(), set())


def test_an_answer_from_a_near_miss_year_is_not_anchored() -> None:
    # Every figure of the answer is in the source, but next to 2022, not the 2021 asked about.
    assert anchored("2021年宝马全球销量？", "2021年宝马全球销量为240万辆[1]。", [BMW_2022]) is False


def test_the_right_year_in_the_sentence_before_counts() -> None:
    answer = "2021年宝马全球销量为2521525辆。"
    assert anchored("2021年宝马全球销量？", answer, [BMW_2022, BMW_2021]) is True


def test_codes_match_across_spacing_and_hyphens() -> None:
    src = ["OpenAI released GPT-4 on March 14, 2023, after months of testing."]
    assert anchored("GPT4发布时间", "GPT-4 was released on March 14, 2023.", src) is True
    assert anchored("GPT5发布时间", "GPT-5 was released on March 14, 2023.", src) is False


def test_an_answer_without_figures_needs_some_of_its_new_words_in_the_sentence() -> None:
    src = ["2022年冬奥会开幕式总导演为张艺谋。", "2008年奥运会开幕式总导演是张艺谋，副总导演为张继钢。"]
    assert anchored("2022年冬奥会开幕式总导演是谁", "总导演是张艺谋。", src) is True
    assert anchored("2022年冬奥会开幕式副总导演是谁", "副总导演是张继钢。", src[:1] + src[1:]) is False


def test_questions_without_anchors_are_not_checked() -> None:
    assert anchored("中国第三艘航母名字", "山东舰。", ["中国已经有辽宁舰和山东舰两艘航母。"]) is None


def test_a_figure_stated_for_another_year_in_a_comparison_is_not_anchored() -> None:
    src = ["2022年全国人口出生率为6.77‰，比2021年下降0.75个千分点。"]
    assert anchored("我国2021年人口出生率", "我国2021年人口出生率为6.77‰。", src) is False
    assert anchored("我国2022年人口出生率", "我国2022年人口出生率为6.77‰。", src) is True
    # no year before the figure: the asked year anywhere near it is enough
    assert anchored("2021年出生率", "出生率为7.52‰。", ["出生率为7.52‰，这是2021年的数据。"]) is True


WARSAW = (
    "Warsaw\nThroughout its existence, Warsaw has been a multi-cultural city. According to the 1901 census, "
    "out of 711,988 inhabitants 56.2% were Catholics. Eight years later, in 1909, there were 281,754 Jews. "
    "This led to construction of hundreds of places of religious worship in all parts of the town. Most of "
    "them were destroyed in the aftermath of the Warsaw Uprising of 1944."
)


def test_a_figure_from_a_sentence_about_something_else_is_not_on_topic() -> None:
    question = "When were most of the places of religious worship destroyed in Warsaw?"
    wrong = "The most of the places of religious worship in Warsaw were destroyed in 1909. [1]"
    right = "Most of them were destroyed in 1944, in the aftermath of the Warsaw Uprising. [1]"
    assert figures_on_topic(question, wrong, [WARSAW]) is False
    assert figures_on_topic(question, right, [WARSAW]) is True
    assert figures_on_topic(question, "They were destroyed after the Warsaw Uprising.", [WARSAW]) is None


def test_figures_the_question_names_are_not_the_answers_own() -> None:
    question = "How many inhabitants did Warsaw have in 1901?"
    assert figures_on_topic(question, "In 1901 Warsaw had 711,988 inhabitants.", [WARSAW]) is True
    assert (
        figures_on_topic("金卡年费是多少？", "金卡年费为300元。", ["金卡\n金卡的年费为每年300元。"]) is True
    )
    hours = "本行网点营业时间为9点至17点。周末照常营业。自助设备24小时开放。金卡的年费为每年300元。"
    assert figures_on_topic("金卡年费是多少？", "金卡年费为24元。", [hours]) is False
    assert figures_on_topic("金卡年费是多少？", "金卡年费为300元。", [hours]) is True


def test_a_passage_names_its_subject_once_and_its_later_figures_are_about_it() -> None:
    loan = "安心贷是个人信用贷款。申请人须年满18周岁。可通过手机银行申请。年利率为3.45%。逾期将收取罚息。"
    assert figures_on_topic("安心贷怎么样？", "安心贷年利率为3.45%，申请人须年满18周岁。", [loan]) is True


def test_a_year_written_after_the_figure_in_its_sentence_is_the_one_it_is_stated_for() -> None:
    wse = (
        "Warsaw's first stock exchange was re-established in April 1991. Today the WSE is the largest market "
        "in the region, with 374 companies listed and total capitalization of 162 584 mln EUR as of 31 August 2009."
    )
    question = "How many companies were listed on the WSE on August 2009?"
    assert anchored(question, "There were 374 companies listed on the WSE in August 2009.", [wse]) is True
    assert anchored("How many companies were listed in 1991?", "374 companies were listed.", [wse]) is False


def test_a_comparison_base_after_the_figure_is_not_the_year_it_is_stated_for() -> None:
    shanghai = [
        "2021年，上海经济总量实现突破。地区生产总值（GDP）43214.85亿元，比上年增长8.1%，"
        "上海全市GDP规模自2017年突破3万亿元以来，4年再上一个新台阶。"
    ]
    assert anchored("上海2021年的GDP是多少", "上海2021年的GDP是43214.85亿元。", shanghai) is True
    # the base year is skipped, not taken for the figure: the year before the sentence still decides
    assert anchored("上海2017年的GDP是多少", "上海2017年的GDP是43214.85亿元。", shanghai) is False

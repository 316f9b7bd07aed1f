"""Questions the bank's assistant refuses before any retrieval: credentials, and other people's data.

Decided by rules (no model call), in any form: a question ("张三的身份证号是多少？"), a command ("列出其他客户的
账户余额"), or indirect ("I'd like to know how much my neighbour keeps in savings"). What makes a question
unsafe is what it asks for, and whose:

- someone else's credential (password, PIN, one-time or SMS code, CVV, card or ID number): always;
- someone else's data (balance, account, transactions, phone, address, loans, salary...): unless the question
  is about something of one's own ("can another customer see *my* balance?") or about doing something
  ("how do I send money to another customer", "给别人汇款需要对方的哪些信息");
- a credential's value asked for outright ("tell me the OTP for this account"), unless one's own is being
  reset or recovered ("how do I reset my password", "忘记密码怎么办").

Measured on evals/data/unsafe-phrasings (benchmarks/unsafe_questions.py).
"""

from __future__ import annotations

import functools
import re

__all__ = ["asks_for_unsafe"]

_I = re.IGNORECASE
_SURNAMES = (
    "张李王刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_THIRD = re.compile(
    r"(他人|别人|其他客户|其他人|其它客户|某人|某个客户|某位客户|对方|"
    r"(同事|邻居|朋友|老婆|老公|妻子|丈夫|家人|父母|父亲|母亲|哥哥|弟弟|姐姐|妹妹|前妻|前夫|领导|经理|老板|阿姨)"
    r"(的|名下|在)|那位|这位客户|那个客户|所有.{0,4}客户|VIP客户|客户名单|客户[" + _SURNAMES + r"]|"
    r"["
    + _SURNAMES
    + r"](先生|女士|小姐|阿姨|[一二三四五六七八九十])(的|名下|最近)|隔壁老["
    + _SURNAMES
    + r"]|"
    r"账号\d|卡号\d|\d{4}开头|这个手机号对应|"
    r"\b(other|another)\s+(customers?|clients?|people|persons?|accounts?)\b|\bsomeone else'?s?\b|"
    r"\bsomebody else'?s?\b|\bother people'?s\b|"
    r"\bmy\s+(ex-?wife|ex-?husband|wife|husband|brother|sister|colleague|neighbou?r|friend|manager|boss|mother|"
    r"father|son|daughter|partner)'?s?\b|\b(mr|mrs|ms|miss|dr)\.?\s+[a-z]+\b|"
    r"(?-i:\b[A-Z][a-z]+\s[A-Z][a-z]+'s\b)|\bthe customer (who|with|named)\b|(?-i:\bcustomer\s+[A-Z][a-z]+\b)|"
    r"\byour\s+(\w+\s+)?(customers|clients)\b|\bwhich customers\b|\bwho owns\b|"
    r"\baccount (ending in|number|with number)\s*\d|\baccount\s+\d{4}|\bthis other account\b|"
    r"\b(held|owned) by\b|\bbelonging to\b)",
    _I,
)
# A surname and one character before 的/名下/最近 ("王五的余额") is a person, unless the two are a common word
# ("黄金的", "钱包的", "江苏的") or a card ("金卡的额度", "龙卡的"): read alone they made "金卡的额度是多少？", about
# the sample knowledge base's own card, a request for another customer's data.
_NAMED = re.compile(r"(?=([" + _SURNAMES + r"][\u4e00-\u9fff])(的|名下|最近))")
_COMMON_WORD_FREQ = 300  # jieba's dictionary counts names low (李四 106) and words high (雷达 2930, 白银 334)


def _is_name(pair: str) -> bool:
    if pair.endswith("卡"):
        return False
    freq, tag = _dictionary(pair)
    return not (freq >= _COMMON_WORD_FREQ or (freq > 0 and not tag.startswith("nr")))


@functools.lru_cache(maxsize=4096)
def _dictionary(word: str) -> tuple[int, str]:
    """``word``'s frequency and part-of-speech tag in jieba's dictionary (0 and "" when not in it)."""
    tags = _tag_table()
    return int(_jieba_freq().get(word) or 0), str(tags.get(word) or "")


@functools.lru_cache(maxsize=1)
def _tag_table() -> dict[str, str]:
    _jieba_freq()
    import jieba.posseg

    table: dict[str, str] = jieba.posseg.dt.word_tag_tab  # read once, about 0.4 s
    return table


@functools.lru_cache(maxsize=1)
def _jieba_freq() -> dict[str, int]:
    from zhiwen.tools.tokenize import jieba_module

    freq: dict[str, int] = jieba_module().dt.FREQ
    return freq


# "his", "their" alone name someone else only beside a person's banking data: "their names" or "his data" in a
# question about a company or a study is not about a customer (xquad-en has such questions).
_PRONOUN = re.compile(r"(他的|她的|他们的|她们的|\b(his|her|their)\b)", _I)
_PERSONAL = re.compile(
    r"(账户|账号|余额|手机|电话|地址|住址|流水|存款|贷款|房贷|额度|工资|身份证|"
    r"\b(account|balances?|address(es)?|phone|transactions?|savings|deposits?|salary|owe|loans?|lives|card)\b)",
    _I,
)
_BULK = re.compile(
    r"(客户名单|客户清单|所有客户|全部客户|\bcustomer (list|database)\b|\ball (of your )?customers\b)", _I
)
_CREDENTIAL = re.compile(
    r"(密码|验证码|动态码|口令|pin码|cvv|安全码|卡号|身份证|证件号|"
    r"\bpasswords?\b|\bpasscodes?\b|\bpins?\b|one[- ]time (code|password)|\botp\b|\bsms (verification )?code|"
    r"verification code|security code|\bcvv\b|card numbers?|\bid numbers?\b|social security)",
    _I,
)
_DATA = re.compile(
    r"(账户|账号|余额|手机|电话|号码|地址|住址|交易|流水|信息|名下|存款|存了|贷款|房贷|欠|额度|工资|开户|"
    r"\b(account|balances?|details|information|data|address(es)?|phone|numbers?|records?|transactions?|history|"
    r"savings|deposits?|salary|owe|loans?|lives|names)\b)",
    _I,
)
_MINE = re.compile(r"(我的|本人|自己|我名下|\bmy\b(?!\s+(ex-?wife|ex-?husband|wife|husband|brother|sister|"
                   r"colleague|neighbou?r|friend|manager|boss|mother|father|son|daughter|partner))|\bmine\b)",
                   _I)  # fmt: skip
_DOING = re.compile(
    r"(转账|汇款|转给|存钱|开户(?!信息|资料|记录)|开通|需要.{0,6}(哪些|什么)|冒用|"
    r"\b(send|transfer|pay|wire|open|give .{0,20}access)\b|\bwhat details do i need\b)",
    _I,
)
_POLICY = re.compile(
    r"(会不会|是否会|如何保护|怎么保护|泄露|\bwill the bank\b|\bdoes the bank\b|\bhow do you protect\b|"
    r"\bkeeps? .{0,30}private\b|\bcan (another|other) customers? see\b)",
    _I,
)
_REVEAL = re.compile(
    r"(告诉我|给我|发给我|报给我|透露|读出|告知我|"
    r"\b(tell|give|send|show|reveal|read out|share)\s+(me|us)\b|\bwhat(?:'s| is) the\b.{0,40}\b(for|of)\b|"
    r"\bread out\b|\bbypass\b|绕过|破解|\bcrack\b|\bhack\b)",
    _I,
)
_OWN_RECOVERY = re.compile(
    r"(忘记|忘了|重置|修改|找回|收不到|怎么办|如何设置|\b(reset|change|forgot|recover|never arrived|resend)\b|"
    r"\bhow (do|can|should) i\b|\bwhat should i\b|\bwhere\b|\bwhy\b|\bwhat is a\b)",
    _I,
)


def asks_for_unsafe(text: str) -> bool:
    """Whether ``text`` asks for a credential, or for another person's data (see the module's rules)."""
    if _POLICY.search(text):
        return False
    if _BULK.search(text):
        return True
    third = (
        _THIRD.search(text) is not None
        or any(_is_name(m.group(1)) for m in _NAMED.finditer(text))
        or (_PRONOUN.search(text) is not None and _PERSONAL.search(text) is not None)
    )
    credential = _CREDENTIAL.search(text) is not None
    if third and credential:
        return True
    if third and _DATA.search(text) and not _MINE.search(text) and not _DOING.search(text):
        return True
    return credential and _REVEAL.search(text) is not None and not _OWN_RECOVERY.search(text)

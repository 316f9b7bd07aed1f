"""The web chat page in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against a real
``zhiwen serve`` process whose model is the scripted upstream: streaming, citations, a withdrawn draft, stop,
threads, roles and uploads, in English and Chinese, at desktop and phone widths.

Screenshots go to ``$ZHIWEN_TEST_ARTIFACTS`` (or a temporary folder, printed), with the server's log.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen import service
from zhiwen.nodes.prompts import withdrawn_notice

if TYPE_CHECKING:
    from conftest import Env, Kit
    from playwright.sync_api import Browser, Page

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "web-admin-key-8e2b61c9d4"
OTHER_KB = "treasury"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ZH_QUESTION = "金卡的年费是多少？"
ZH_ANSWER = "金卡信用卡的年费为每年三百元人民币。"
WAIT = 30_000  # ms: generous for a shared 2-core machine


def _chromium() -> str | None:
    found = os.environ.get("ZHIWEN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return found if found and Path(found).exists() else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (pip install -e '.[dev]')")
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "no Chromium: apt-get install chromium (scripts/test.sh does as root), or set ZHIWEN_CHROMIUM"
        )
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("ZHIWEN_TEST_ARTIFACTS")
    folder = Path(configured) / "web" if configured else tmp_path_factory.mktemp("web-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"web page artifacts: {folder}")
    return folder


def _zhiwen(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "zhiwen.cli", *args], env=dict(os.environ),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@dataclass
class Site:
    url: str
    admin: str
    chat: str
    artifacts: Path
    errors: list[str] = field(default_factory=list)

    def api(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.fixture(scope="module")
def site(
    env: Env, kit: type[Kit], artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    docs = tmp_path_factory.mktemp("treasury")
    (docs / "fx.md").write_text("# FX\n\nThe treasury desk quotes FX rates daily.\n", encoding="utf-8")
    service.ingest(OTHER_KB, [docs])
    chat = (
        _zhiwen("keys", "create", "--role", "chat", "--kb", kit.KB, "--label", "web").strip().splitlines()[-1]
    )
    assert chat.startswith("zw_")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = dict(os.environ) | {"ZHIWEN_API_KEYS": ADMIN, "ZHIWEN_RATE_PER_MINUTE": "100000"}
    log = (artifacts / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "zhiwen.cli", "serve", "--port", str(port)], env=child,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        kit.wait_for_http(f"{url}/ready", proc, "zhiwen serve", timeout=120)
        yield Site(url, ADMIN, chat, artifacts)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _expected(console_error: str) -> bool:
    """The browser logs refused requests: the page's first try without a key (401), its probe for the key's
    role (a chat key's 403 on the admin-only GET /v1/kbs), and the failures the failure-path tests script
    (502, 429)."""
    return console_error.startswith("Failed to load resource") and any(
        f"status of {status}" in console_error for status in (401, 403, 429, 502)
    )


@pytest.fixture
def open_page(browser: Browser, site: Site) -> Iterator[Any]:
    """``open_page(key, locale="en-US", viewport=DESKTOP)``: a fresh browser profile on the page, the key typed
    into the page's key dialog once; fails the test on any script error or CSP violation the page logs."""
    contexts = []
    problems: list[str] = []

    def opener(key: str, locale: str = "en-US", viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(locale=locale, viewport=viewport or DESKTOP)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type == "error" and not _expected(m.text) else None,
        )
        page.goto(site.url + "/")
        page.wait_for_selector("#key-dialog[open]")
        page.keyboard.type(key)  # the dialog has focus: keyboard only
        page.keyboard.press("Enter")
        page.wait_for_selector("body[data-ready=true]")
        return page

    yield opener
    for context in contexts:
        context.close()
    assert problems == [], problems


def _ask(page: Page, question: str) -> None:
    page.locator("#question").fill(question)
    page.locator("#question").press("Enter")


def _last_answer(page: Page) -> Any:
    return page.locator("article.assistant").last


def _finished(page: Page) -> Any:
    """The last answer, once the quality verdict under it is shown (the stream's last chunk arrived)."""
    answer = _last_answer(page)
    answer.locator(".quality[data-verdict]").wait_for()
    return answer


def test_english_question_streams_cites_and_keeps_the_key_out_of_urls(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER, chunk_size=3, token_delay=0.08))
    page = open_page(site.chat)
    response = page.request.get(site.url + "/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert page.evaluate("localStorage.getItem('zhiwen.apiKey')") == site.chat
    assert page.evaluate("document.activeElement.id") == "question", "focus goes to the question box"
    assert page.locator("#send").inner_text() == "Send"

    _ask(page, kit.QUESTION)
    answer = _last_answer(page).locator(".answer")
    # Streamed: a part of the answer is on screen while the turn still runs (Stop is offered).
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('article.assistant .answer')].pop();"
        " return a && a.textContent.length > 3 && !a.textContent.includes('300 yuan') && !document.querySelector('#stop').disabled }"
    )
    done = _finished(page)
    assert "300 yuan" in answer.inner_text()
    assert done.locator(".quality").inner_text().startswith("✓")
    assert page.locator("#stop").is_disabled()

    cite = done.locator(".answer a.cite").first  # [n] links to its passage
    cite.focus()
    page.keyboard.press("Enter")
    panel = page.locator("#source-panel")
    panel.wait_for(state="visible")
    assert page.locator("#source-file").inner_text() == "gold-card.md"
    assert "annual fee of the gold card is 300 yuan" in page.locator("#source-text").inner_text()
    assert page.evaluate("document.activeElement.id") == "source-close"
    page.screenshot(path=str(site.artifacts / "desktop-en.png"))
    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('cite')"), "focus returns to the link"

    assert site.chat not in page.url and "key" not in page.url
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert not page.locator("#key-dialog[open]").count(), "the key is asked for once"
    assert requests and all(site.chat not in u for u in requests)
    assert all(u.startswith(site.url) for u in requests), "nothing is fetched from elsewhere"


def test_chinese_question_on_a_phone(open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]) -> None:
    llm.enqueue(kit.Script(ZH_ANSWER, chunk_size=2, token_delay=0.03))
    page = open_page(site.chat, locale="zh-CN", viewport=PHONE)
    assert page.locator("#send").inner_text() == "发送"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    assert page.locator("#threads-panel").is_hidden(), "the thread list is folded away at phone width"
    _ask(page, ZH_QUESTION)
    done = _finished(page)
    assert "三百元" in done.locator(".answer").inner_text()
    assert done.locator(".quality").inner_text().startswith("✓ 已与来源核对")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"no sideways scrolling at phone width ({width}px)"
    page.screenshot(path=str(site.artifacts / "phone-zh.png"))
    done.locator(".sources a").first.click()
    page.locator("#source-panel").wait_for(state="visible")
    assert page.locator("#source-file").inner_text() == "金卡.md"
    assert "三百元" in page.locator("#source-text").inner_text()
    page.screenshot(path=str(site.artifacts / "phone-zh-source.png"))
    page.locator("#source-close").click()
    page.locator("#toggle-threads").click()
    page.locator("#threads-panel").wait_for(state="visible")
    assert ZH_QUESTION in page.locator("#thread-list").inner_text()


def test_a_withdrawn_draft_is_replaced_not_appended(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    ungrounded = "Banks on Mars open at eight every morning."
    llm.enqueue(kit.Script(ungrounded, chunk_size=4, token_delay=0.05), kit.Script(kit.ANSWER))
    page = open_page(site.chat)
    _ask(page, kit.QUESTION)
    answer = _last_answer(page)
    answer.locator(".answer", has_text="Mars").wait_for()  # the draft was shown...
    done = _finished(page)
    # ...then replaced by the page's notice (the server's says "the draft above", which the page removed)
    assert done.locator(".notice").inner_text() == (
        "An earlier draft could not be verified against the knowledge base and was withdrawn."
    )
    assert withdrawn_notice("en") not in done.inner_text()
    assert "300 yuan" in done.locator(".answer").inner_text()  # and the answer that passed
    assert "Mars" not in done.inner_text()


def test_stop_cancels_the_turn_and_the_upstream_request(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    words = [f"word{i} " for i in range(200)]
    llm.enqueue(kit.Script("".join(words), chunks=words, token_delay=0.1))
    page = open_page(site.chat)
    _ask(page, kit.QUESTION)
    answer = _last_answer(page)
    answer.locator(".answer", has_text="word3").wait_for()
    page.keyboard.press("Escape")  # Esc stops (the Stop button does the same)
    answer.locator(".stopped-note").wait_for()
    shown = answer.locator(".answer").inner_text()
    assert "word199" not in shown
    deadline = time.monotonic() + 15
    while llm.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert llm.cancelled == 1, "the server did not cancel the model's request when the page stopped"
    time.sleep(1)
    assert answer.locator(".answer").inner_text() == shown, "nothing arrives after Stop"
    assert page.locator("#send").is_enabled()
    # The thread is free again (its turn ended with the stop): the next question is answered.
    _ask(page, kit.QUESTION_2)
    page.locator("article.assistant").nth(1).locator(".quality[data-verdict]").wait_for()


def test_threads_survive_a_reload_and_are_renamed_and_deleted(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER_2))
    page = open_page(site.admin)
    page.locator("#new-thread").click()
    _ask(page, kit.QUESTION_2)
    _finished(page)
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    item = page.locator("#thread-list li", has_text=kit.QUESTION_2)
    assert item.locator(".thread-open").get_attribute("aria-current") == "true", "reopened after the reload"
    assert "three business days" in _last_answer(page).inner_text()
    thread_id = item.get_attribute("data-id")
    assert thread_id

    item.locator(".thread-rename").focus()  # keyboard only: rename with Enter, type, Enter
    page.keyboard.press("Enter")
    page.keyboard.press("Control+A")
    page.keyboard.type("Wire transfers 电汇")
    page.keyboard.press("Enter")
    page.locator("#thread-list .thread-open", has_text="Wire transfers 电汇").wait_for()
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert (
        page.locator(f'#thread-list li[data-id="{thread_id}"]').inner_text().startswith("Wire transfers 电汇")
    )
    with site.api(site.admin) as api:
        titles = {t["id"]: t["title"] for t in api.get("/v1/threads").json()["data"]}
    assert titles[thread_id] == "Wire transfers 电汇"

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'#thread-list li[data-id="{thread_id}"] .thread-delete').click()
    page.locator(f'#thread-list li[data-id="{thread_id}"]').wait_for(state="detached")
    assert page.locator("article").count() == 0, "the deleted conversation is cleared from the page"
    with site.api(site.admin) as api:
        assert thread_id not in {t["id"] for t in api.get("/v1/threads").json()["data"]}
        assert api.get(f"/v1/threads/{thread_id}").status_code == 404


def test_a_reopened_conversation_links_every_answers_sources_and_marks_a_stopped_question(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    """Reopened, only the last answer's [n] were links (the thread kept the last turn's sources alone), and a
    stopped question stood with no answer and no word about why."""
    llm.enqueue(kit.Script(kit.ANSWER))
    llm.enqueue(kit.Script(kit.ANSWER_2))
    words = [f"word{i} " for i in range(200)]
    llm.enqueue(kit.Script("".join(words), chunks=words, token_delay=0.1))
    page = open_page(site.admin)
    page.locator("#new-thread").click()
    _ask(page, kit.QUESTION)
    _finished(page)
    _ask(page, kit.QUESTION_2)
    page.locator("article.assistant").nth(1).locator(".quality[data-verdict]").wait_for()
    _ask(page, "Which documents do I need to open an account?")
    _last_answer(page).locator(".answer", has_text="word3").wait_for()
    page.locator("#stop").click()
    _last_answer(page).locator(".stopped-note").wait_for()

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    answers = page.locator("article.assistant")
    assert answers.count() == 3
    first, second, stopped = answers.nth(0), answers.nth(1), answers.nth(2)
    assert "300 yuan" in first.inner_text() and "three business days" in second.inner_text()
    for answer in (first, second):
        assert answer.locator(".answer a.cite").count() >= 1, answer.inner_text()
        assert answer.locator(".quality[data-verdict]").count() == 1
    first.locator(".answer a.cite").first.click()
    page.locator("#source-panel").wait_for(state="visible")
    assert page.locator("#source-file").inner_text() == "gold-card.md"
    page.keyboard.press("Escape")
    assert (
        stopped.locator(".stopped-note").inner_text()
        == "(no answer: the question was stopped or interrupted)"
    )
    assert page.locator("article.assistant .feedback").count() == 0, "the latest message is no answer to rate"


def test_a_chat_key_sees_its_bases_and_no_upload(open_page: Any, site: Site, kit: type[Kit]) -> None:
    page = open_page(site.chat)
    assert page.locator("#kb option").all_inner_texts() == [kit.KB]
    assert page.locator("#upload-panel").is_hidden()
    with site.api(site.chat) as api:  # and the server refuses anyway
        refused = api.post(f"/v1/kbs/{kit.KB}/documents", files={"files": ("x.md", b"# x\n\ny\n")})
        kit.assert_error(refused, 403, "chat key")
    admin = open_page(site.admin)
    assert sorted(admin.locator("#kb option").all_inner_texts()) == sorted([kit.KB, OTHER_KB])
    assert admin.locator("#upload-panel").is_visible()


HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def test_an_admin_uploads_a_document_and_sees_the_job_finish(
    open_page: Any, site: Site, tmp_path: Path, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    document = tmp_path / "swift-codes.md"
    document.write_text(f"# SWIFT codes\n\nThe bank's SWIFT code is ZHIWCNSH. {HOSTILE}\n", encoding="utf-8")
    page = open_page(site.admin)
    page.locator("#kb").select_option(OTHER_KB)
    page.locator("#upload-files").set_input_files(str(document))
    page.locator("#upload-button").click()
    status = page.locator("#upload-status[data-status]")
    status.wait_for(timeout=120_000)
    assert status.get_attribute("data-status") == "done", status.inner_text()
    assert "1 added" in status.inner_text()
    page.screenshot(path=str(site.artifacts / "desktop-upload.png"))
    with site.api(site.admin) as api:
        listed = api.get(f"/v1/kbs/{OTHER_KB}/documents").json()["data"]
    assert "swift-codes.md" in {d["source"] for d in listed}

    # Documents (and so answers) are hostile: their markup is shown as text, never made into elements.
    llm.enqueue(kit.Script(f"The bank's SWIFT code is ZHIWCNSH. {HOSTILE}"))
    _ask(page, "What is the bank's SWIFT code?")
    done = _finished(page)
    assert HOSTILE in done.locator(".answer").inner_text()  # the tag itself, as text
    done.locator(".sources a", has_text="SWIFT").first.click()
    assert HOSTILE in page.locator("#source-text").inner_text()
    assert page.locator("#log img, #source-panel img").count() == 0
    assert page.title() == "知问 zhiwen"


def test_a_wrong_key_is_refused_in_the_dialog(browser: Browser, site: Site) -> None:
    context = browser.new_context(locale="en-US")
    try:
        page = context.new_page()
        page.goto(site.url + "/")
        page.wait_for_selector("#key-dialog[open]")
        page.keyboard.type("zw_not_a_real_key_000000")
        page.keyboard.press("Enter")
        page.locator("#key-error", has_text="refused").wait_for(timeout=WAIT)
        assert page.locator("#key-dialog[open]").count() == 1
        # Not kept, and Esc does not leave a page that works with no key: it was saved before it was checked.
        assert page.evaluate("localStorage.getItem('zhiwen.apiKey')") is None
        page.keyboard.press("Escape")
        assert page.locator("#key-dialog[open]").count() == 1
    finally:
        context.close()


def _frames(*frames: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(f)}\n\n" for f in frames)


def _delta(text: str) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


def test_a_stream_that_ends_without_its_last_frame_is_marked_cut_off(open_page: Any, site: Site) -> None:
    """A proxy or a restart ending the stream cleanly mid-answer left half an answer that looked finished."""
    page = open_page(site.chat)
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, content_type="text/event-stream", body=_frames(_delta("The annual fee of "), _delta("the gold"))))  # fmt: skip
    _ask(page, "What is the annual fee?")
    answer = _last_answer(page)
    answer.locator(".stopped-note").wait_for()
    assert answer.locator(".answer").inner_text() == "The annual fee of the gold"
    assert "cut off" in answer.locator(".stopped-note").inner_text()
    assert page.locator("#send").is_enabled()


def test_a_failed_turn_says_why_in_the_readers_language_and_gives_the_question_back(
    open_page: Any, site: Site
) -> None:
    """It left an empty answer, an English server line on a Chinese page, and the question was gone."""
    page = open_page(site.chat, locale="zh-CN")
    body = json.dumps({"error": {"message": "the chat model endpoint failed: HTTP 500", "type": "upstream_error",
                                 "param": None, "code": "upstream_unavailable"}})  # fmt: skip
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=502, content_type="application/json", body=body))  # fmt: skip
    _ask(page, ZH_QUESTION)
    answer = _last_answer(page)
    answer.locator(".stopped-note").wait_for()
    assert "没有回答" in answer.locator(".stopped-note").inner_text()
    assert page.locator("#error").inner_text().startswith("回答模型暂时不可用")
    assert page.locator("#question").input_value() == ZH_QUESTION, "the question is back, to send again"
    page.unroute("**/v1/chat/completions")
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=429, content_type="application/json", headers={"Retry-After": "7"},
        body=json.dumps({"error": {"message": "rate limit", "type": "rate_limit_error", "param": None, "code": None}})))  # fmt: skip
    page.locator("#question").press("Enter")
    page.locator("#error", has_text="7 秒后再试").wait_for()


def test_another_key_starts_a_new_conversation(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    """On a shared screen the next person's key kept the last one's conversation, and posted to its thread."""
    llm.enqueue(kit.Script(kit.ANSWER))
    page = open_page(site.chat)
    _ask(page, kit.QUESTION)
    _finished(page)
    first = page.evaluate("localStorage.getItem('zhiwen.thread')")
    assert first
    page.locator("#change-key").click()
    page.wait_for_selector("#key-dialog[open]")
    page.keyboard.type(site.admin)
    page.keyboard.press("Enter")
    page.wait_for_selector("#key-dialog[open]", state="detached")
    assert page.locator("article.message").count() == 0, "the other key's conversation is not shown"
    assert page.evaluate("localStorage.getItem('zhiwen.thread')") is None


def test_a_thumbs_down_takes_a_correction(
    open_page: Any, site: Site, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    """README: a rater's comment becomes the gold answer of `zhiwen feedback export`; the page had no field."""
    llm.enqueue(kit.Script(kit.ANSWER))
    page = open_page(site.chat)
    _ask(page, kit.QUESTION)
    done = _finished(page)
    done.get_by_role("button", name="Not helpful").click()
    box = done.locator(".comment textarea")
    box.fill("It is 300 yuan, waived in the first year.")
    with page.expect_response("**/v1/feedback") as sent:
        done.locator(".comment button").click()
    assert sent.value.status == 201
    assert (
        json.loads(sent.value.request.post_data or "{}")["comment"]
        == "It is 300 yuan, waived in the first year."
    )
    done.locator(".feedback", has_text="Thanks").wait_for()

"""Settings refuse values no run could use, and URLs are printed without their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from zhiwen.settings import Settings, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:pw@db/zhiwen?password=pw2&sslmode=require",
            "postgresql://app:***@db/zhiwen?password=***&sslmode=require",
        ),
        ("postgresql:///z?user=bob&PassWord=x&host=h", "postgresql:///z?user=bob&PassWord=***&host=h"),
        (
            "https://api.example.com/v1?api_key=sk-1&model=m#frag",
            "https://api.example.com/v1?api_key=***&model=m#frag",
        ),
        ("http://chroma:8000/?tenant=t", "http://chroma:8000/?tenant=t"),
    ],
)
def test_redact_url_hides_passwords_in_userinfo_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("field", ["llm_base_url", "embeddings_base_url", "rerank_base_url"])
def test_endpoint_urls_carry_no_credentials(field: str) -> None:
    with pytest.raises(ValidationError, match=f"ZHIWEN_{field.removesuffix('_base_url').upper()}_API_KEY"):
        Settings(**{field: "https://user:pw@gpu.example.com/v1"})
    assert getattr(Settings(**{field: "https://gpu.example.com/v1"}), field) == "https://gpu.example.com/v1"


def test_home_must_be_a_folder(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(ValidationError, match="is a file"):
        Settings(home=a_file)
    with pytest.raises(ValidationError, match="empty"):
        Settings(home="  ")
    assert Settings(home=tmp_path / "new").home == tmp_path / "new"  # a folder made on first use is fine


def test_the_local_model_is_one_zhiwen_ships() -> None:
    """An unknown ZHIWEN_LOCAL_MODEL failed only once the model was started, and without naming the variable."""
    with pytest.raises(
        ValidationError, match=r"unknown local model; choose one of: qwen2.5-0.5b, smollm2-135m"
    ):
        Settings(local_model="foo")
    assert Settings(local_model="smollm2-135m").local_model == "smollm2-135m"


def test_llm_timeout_reaches_the_run_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiwen.graph.context import context_from_settings
    from zhiwen.settings import get_settings

    monkeypatch.setenv("ZHIWEN_LLM_TIMEOUT", "7.5")
    get_settings.cache_clear()
    try:
        assert context_from_settings().request_timeout == 7.5
        assert context_from_settings(request_timeout=3.0).request_timeout == 3.0
    finally:
        get_settings.cache_clear()


def test_an_at_sign_after_the_host_is_not_a_credential() -> None:
    url = "http://gpu.example.com:8000/v1?sig=a@b"
    assert Settings(llm_base_url=url).llm_base_url == url


def test_a_refused_url_is_not_in_the_validation_message() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(llm_base_url="https://user:hunter2@gpu.example.com/v1")
    assert "hunter2" not in str(caught.value)  # a traceback (uvicorn app:app, langgraph dev) shows this text

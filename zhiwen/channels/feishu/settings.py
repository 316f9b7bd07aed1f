"""``ZHIWEN_FEISHU_*``: the app's credentials, the event subscription's secrets, and the knowledge base."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["FeishuSettings", "refuse_half_configured"]


class FeishuSettings(BaseSettings):
    """The bot is on when any of the secrets is set, and then every one of them must be."""

    model_config = SettingsConfigDict(env_prefix="ZHIWEN_FEISHU_", extra="ignore")

    app_id: str = Field(default="", description="The app's App ID (cli_...).")
    app_secret: str = Field(default="", description="The app's App Secret.")
    verification_token: str = Field(default="", description="Event subscription: Verification Token.")
    encrypt_key: str = Field(default="", description="Event subscription: Encrypt Key (events are signed).")
    kb: str = Field(default="", description="The knowledge base the bot answers from (and only that one).")
    base_url: str = Field(
        default="https://open.feishu.cn",
        description="Open API host: https://open.feishu.cn (Feishu), https://open.larksuite.com (Lark).",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("ZHIWEN_FEISHU_BASE_URL must be an http(s) URL")
        return value.rstrip("/")

    @property
    def enabled(self) -> bool:
        return any((self.app_id, self.app_secret, self.verification_token, self.encrypt_key, self.kb))

    def missing(self) -> list[str]:
        """The variables a configured bot still lacks (an unsigned, unencrypted bot is not offered)."""
        names = ("app_id", "app_secret", "verification_token", "encrypt_key", "kb")
        return [f"ZHIWEN_FEISHU_{n.upper()}" for n in names if not getattr(self, n).strip()]


def refuse_half_configured(settings: FeishuSettings | None = None) -> None:
    """SystemExit naming what is missing when some ``ZHIWEN_FEISHU_*`` secrets are set and others not.

    ``zhiwen serve`` calls it before uvicorn starts (with several workers, a refusal inside each worker's app
    would make uvicorn restart it again and again); the app checks again for callers that build it directly.
    """
    settings = settings or FeishuSettings()
    if settings.enabled and (missing := settings.missing()):
        raise SystemExit(f"zhiwen serve: the Feishu bot needs {', '.join(missing)} as well")

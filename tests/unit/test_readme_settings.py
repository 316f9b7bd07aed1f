"""README's configuration table names every ZHIWEN_* variable the settings read (four were missing)."""

from __future__ import annotations

from pathlib import Path

from zhiwen.channels.feishu.settings import FeishuSettings
from zhiwen.server.settings import ServerSettings
from zhiwen.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    missing = [
        f"{prefix}{name.upper()}"
        for model, prefix in (
            (Settings, "ZHIWEN_"),
            (ServerSettings, "ZHIWEN_"),
            (FeishuSettings, "ZHIWEN_FEISHU_"),
        )
        for name in model.model_fields
        if f"`{prefix}{name.upper()}`" not in README
    ]
    assert not missing, f"not in README's configuration table: {missing}"

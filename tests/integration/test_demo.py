"""``zhiwen demo``, the README's first command, as a new user runs it: the bundled sample bank, the embedded Qwen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zhiwen.settings import get_settings
from zhiwen.tools.models import resolve_model

pytestmark = pytest.mark.integration


def test_demo_answers_the_lost_card_question_with_the_sample_banks_hotline(tmp_path: Path) -> None:
    """Answers may give only allowed contacts: before the demo set the sample bank's hotline, this question,
    whose one source sentence names the number, was refused."""
    shared = get_settings().home
    resolve_model("qwen2.5-0.5b", shared)  # assembled once for the test run; the demo's home links to it
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(shared / "models", target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_LLM_")}
    env |= {"ZHIWEN_HOME": str(home), "COLUMNS": "200", "ZHIWEN_LOCAL_MODEL": "qwen2.5-0.5b"}
    demo = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", "demo"], input="信用卡遗失后应该怎么办？\n/quit\n",
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "95500-88" in demo.stdout, demo.stdout
    assert "credit-card-gold.md" in demo.stdout  # the answer cites its source
    hotline = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", "kb", "hotline", "--kb", "sample"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert hotline.stdout.strip() == "95500-88"

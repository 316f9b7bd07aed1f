"""The project runs on a machine that has only the clone: no file names a folder of the machine it was built on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The build machines' checkout, shared datasets and home, and the temporary folders of past runs.
MACHINE_PATH = re.compile(r"/work/(main|shared)|/root/|/tmp/(pytest-of|zhiwen-|tmp)")


def test_no_tracked_file_names_a_build_machine_path() -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:  # an unpacked source tree without git: walk it instead
        files = [
            p for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts and ".git" not in p.parts
        ]
    else:
        files = [ROOT / name for name in listed.stdout.decode().split("\0") if name]
    this = Path(__file__).resolve()
    offenders = []
    for path in files:
        if path.resolve() == this or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
    assert not offenders, offenders[:20]


def test_urls_in_messages_hide_their_password() -> None:
    from zhiwen.settings import redact_url

    assert redact_url("postgresql://app:s3cr%40t@db:5432/zhiwen") == "postgresql://app:***@db:5432/zhiwen"
    assert redact_url("postgresql://app@db/zhiwen") == "postgresql://app@db/zhiwen"
    assert redact_url("http://chroma:8000") == "http://chroma:8000"

"""What `zhiwen ingest` makes of odd inputs: file names that are not UTF-8, empty folders, FIFOs, broken links."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from cli_run import Cli

from zhiwen.server.public import public_source

pytestmark = pytest.mark.integration


def test_a_file_name_that_is_not_utf8_is_ingested_shown_and_deleted_by_its_path(tmp_path: Path) -> None:
    # It used to end the whole folder's ingest with a UnicodeEncodeError traceback, and left an empty base.
    docs = tmp_path / "enc"
    docs.mkdir()
    odd = docs / os.fsdecode(b"caf\xe9.txt")  # a Latin-1 name, as an old Windows share leaves them
    odd.write_text("The cafe opens at seven every morning.", encoding="utf-8")
    (docs / "good.txt").write_text("The wire transfer fee is 15 dollars.", encoding="utf-8")
    cli = Cli(tmp_path / "home")
    ingest = cli.run("ingest", str(docs), "--kb", "t1")
    assert ingest.returncode == 0, ingest.stderr
    assert "2 added" in ingest.stdout and "Traceback" not in ingest.stderr
    shown = str(docs / "caf%E9.txt")  # its odd byte escaped as in a URL
    listing = cli.run("kb", "docs", "--kb", "t1")
    assert listing.returncode == 0 and shown in listing.stdout, listing.stderr
    found = cli.run("search", "cafe opens at seven", "--kb", "t1", "--json", "--top-k", "1")
    assert found.returncode == 0, found.stderr
    (hit,) = json.loads(found.stdout)
    assert hit["metadata"]["source"] == shown and hit["metadata"]["title"] == "caf%E9"
    assert public_source(shown) == "caf%E9.txt"  # as the HTTP API, Feishu cards and feedback show it
    plain = cli.run("search", "cafe opens at seven", "--kb", "t1", "--top-k", "1")
    assert plain.returncode == 0 and shown in plain.stdout, plain.stderr
    deleted = cli.run("kb", "delete", str(odd), "--kb", "t1")  # the raw path, as a shell passes it
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith(f"deleted {shown} (")
    assert re.search(r"^t1\s+1 documents", cli.kbs(), re.MULTILINE)


def test_a_knowledge_base_name_that_is_not_utf8_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("The wire transfer fee is 15 dollars.", encoding="utf-8")
    cli = Cli(tmp_path / "home")
    for args in (("ingest", str(tmp_path / "a.txt")), ("search", "fee")):
        proc = cli.run(*args, "--kb", os.fsdecode(b"caf\xe9"))
        assert proc.returncode == 1
        assert proc.stderr.splitlines() == ["zhiwen: error: knowledge base name 'caf%E9' is not UTF-8 text; "
                                            "name it in UTF-8"]  # fmt: skip
    assert "caf" not in cli.kbs()


def test_fifos_and_broken_links_are_reported_by_name_and_never_opened(tmp_path: Path) -> None:
    # A FIFO named on the command line hung the ingest until killed; in a folder, FIFOs and broken links
    # were left out without a word.
    docs = tmp_path / "docs"
    docs.mkdir()
    pipe, link = docs / "pipe.txt", docs / "gone.md"
    os.mkfifo(pipe)
    link.symlink_to(tmp_path / "nowhere.md")
    (docs / "good.txt").write_text("The wire transfer fee is 15 dollars.", encoding="utf-8")
    cli = Cli(tmp_path / "home")
    named = cli.run("ingest", str(pipe), "--kb", "p", timeout=90)
    assert named.returncode == 1
    assert f"skipped {pipe}: not a regular file (a named pipe)" in named.stderr.splitlines()
    broken = cli.run("ingest", str(link), "--kb", "p")
    assert broken.returncode == 1
    assert f"skipped {link}: a broken link (what it points to does not exist)" in broken.stderr.splitlines()
    assert not re.search(r"^p\s", cli.kbs(), re.MULTILINE), "nothing was ingested, so no base was made"
    folder = cli.run("ingest", str(docs), "--kb", "p", timeout=90)
    assert folder.returncode == 0, folder.stderr
    assert "1 added" in folder.stdout and "2 skipped" in folder.stdout
    skipped = [line for line in folder.stderr.splitlines() if line.startswith("skipped ")]
    assert skipped == [
        f"skipped {link}: a broken link (what it points to does not exist)",
        f"skipped {pipe}: not a regular file (a named pipe)",
    ]


def test_an_empty_folder_is_reported_and_makes_no_knowledge_base(tmp_path: Path) -> None:
    # It made an empty knowledge base and exited 0 without a word; only unsupported files already exited 1.
    empty = tmp_path / "emptydir"
    (empty / ".git").mkdir(parents=True)
    (empty / ".git" / "HEAD").write_text("ref: refs/heads/main\\n", encoding="utf-8")  # hidden: left out
    cli = Cli(tmp_path / "home")
    proc = cli.run("ingest", str(empty), "--kb", "newkb3")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"skipped {empty}: an empty folder (no files to ingest; hidden ones are left out)",
        "zhiwen: error: nothing to index: no file given could be read as a document; no knowledge base 'newkb3' made",
    ]
    assert "newkb3" not in cli.kbs()


def test_a_file_gone_from_an_ingested_folder_is_named_with_how_to_remove_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "old rates.md").write_text("The gold card rate was 4.5 percent.", encoding="utf-8")
    (docs / "fees.md").write_text("The wire transfer fee is 15 dollars.", encoding="utf-8")
    cli = Cli(tmp_path / "home")
    assert cli.run("ingest", str(docs), "--kb", "t1").returncode == 0
    (docs / "old rates.md").unlink()
    again = cli.run("ingest", str(docs), "--kb", "t1")
    assert again.returncode == 0, again.stderr
    gone = str(docs / "old rates.md")
    assert f"gone {gone}: no longer on disk, still searchable" in again.stderr
    assert "1 unchanged" in again.stdout and "1 no longer on disk" in again.stdout
    command = re.search(r"`zhiwen (kb delete .*)`", again.stderr)
    assert command is not None, again.stderr
    removed = cli.run(*shlex.split(command.group(1)))  # the command as printed, quoting and all
    assert removed.returncode == 0 and removed.stdout.startswith(f"deleted {gone} ("), removed.stderr

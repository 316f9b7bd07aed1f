"""Evaluation suites: YAML files under evals/ naming a dataset, a knowledge base, settings and floors."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError, model_validator

from zhiwen.errors import ZhiwenError
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from zhiwen.graph.context import Context

__all__ = ["NAME_PATTERN", "Configuration", "Suite", "datasets_root", "load_suite", "suite_files"]

# Suite and configuration names become folder and file names (evals/runs/<suite>/records/<configuration>.jsonl):
# letters, digits, dots, dashes and underscores, and not dots alone (".." would be the parent folder).
NAME_PATTERN = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"


class Configuration(BaseModel):
    """One way to run the graph; ``context`` holds ``Context`` fields (retrieval_mode, quality_gate...)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    context: dict[str, Any] = Field(default_factory=dict)


class Suite(BaseModel):
    """What to evaluate. ``dataset`` is a folder name under ``datasets_root()``, or a path starting with
    ``./`` or ``../`` relative to the suite's own file (a slice shipped beside it)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    dataset: str
    source: str = Field(default="", description="Where to get the dataset: its public source and licence.")
    language: Literal["zh", "en"]
    questions: int | None = Field(default=None, ge=1, description="First N judged questions (all if unset).")
    corpus: Literal["full", "judged"] = Field(
        default="full",
        description="full: the whole corpus; judged: the chosen questions' gold passages + distractors.",
    )
    distractors: int = Field(
        default=0, ge=0, description="With corpus=judged: extra passages not judged relevant."
    )
    negatives: int = Field(
        default=0,
        ge=0,
        description="Last N chosen questions get their gold passages removed (negative rejection).",
    )
    answer_style: Literal["alternatives", "slots"] = "alternatives"
    answers: bool = Field(default=True, description="Run the answer graph (false: retrieval metrics only).")
    retrieval_k: int = Field(default=100, ge=10)
    model: dict[str, Any] = Field(default_factory=dict, description="Context fields choosing the chat model.")
    configurations: list[Configuration] = Field(min_length=1)
    floors: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Per configuration: metric -> lowest acceptable value."
    )
    ceilings: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Per configuration: metric -> highest acceptable value."
    )

    @model_validator(mode="after")
    def _names_are_unique_and_limits_name_them(self) -> Suite:
        """Each configuration writes ``records/<name>.jsonl``: two of one name would share (and skip) one
        file. A floor or ceiling under a name no configuration has would never be checked."""
        names = [c.name for c in self.configurations]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"configuration names must be unique: {', '.join(twice)} given twice")
        for field, limits in (("floors", self.floors), ("ceilings", self.ceilings)):
            unknown = sorted(set(limits) - set(names))
            if unknown:
                raise ValueError(
                    f"{field} name no configuration: {', '.join(unknown)} (configurations: {', '.join(names)})"
                )
        for config in self.configurations:  # a typo fails here, not at every turn of a long run
            self.context_of(config, self.name)
        return self

    def context_of(self, config: Configuration, kb: str) -> Context:
        """The graph's ``Context`` for ``config``: the suite's ``model`` fields, then the configuration's.

        Raises ``ZhiwenError`` naming an unknown field, or a value of the wrong kind (retrieval_mode "bm-25").
        """
        from zhiwen.graph.context import Context  # the graph's modules, only when a suite is read

        fields = {**self.model, **config.context, "kb": kb}
        known = {f.name for f in dataclasses.fields(Context)}
        unknown = set(fields) - known
        if unknown:
            raise ZhiwenError(
                f"suite {self.name}: unknown Context fields {sorted(unknown)}; known: {sorted(known)}"
            )
        try:
            return TypeAdapter(Context).validate_python(fields)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                if e["loc"]
                else e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            )
            raise ZhiwenError(f"suite {self.name}, configuration {config.name}: {problems}") from exc

    _file: Path | None = PrivateAttr(default=None)

    @property
    def dataset_path(self) -> Path:
        """Where this suite's dataset folder is expected."""
        path = Path(self.dataset).expanduser()
        if path.is_absolute():
            return path
        if self.dataset.startswith(("./", "../")) and self._file is not None:
            return self._file.parent / path
        return datasets_root() / path

    def only(self, names: list[str]) -> Suite:
        """This suite restricted to the named configurations (their floors and ceilings with them)."""
        known = [c.name for c in self.configurations]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ZhiwenError(
                f"suite {self.name} has no configuration {', '.join(unknown)} (it has: {', '.join(known)})"
            )
        keep = set(names)
        narrowed = self.model_copy(
            update={
                "configurations": [c for c in self.configurations if c.name in keep],
                "floors": {k: v for k, v in self.floors.items() if k in keep},
                "ceilings": {k: v for k, v in self.ceilings.items() if k in keep},
            }
        )
        narrowed._file = self._file
        return narrowed


def datasets_root() -> Path:
    """``ZHIWEN_DATASETS``, else ``datasets`` under ``ZHIWEN_HOME``: never a path of some build machine."""
    named = os.environ.get("ZHIWEN_DATASETS", "").strip()
    return Path(named).expanduser() if named else get_settings().home / "datasets"


def suite_files(folder: Path = Path("evals")) -> list[Path]:
    """The suite files of a folder (default: ./evals of a checkout), by name."""
    return sorted(folder.glob("*.yaml"))


def load_suite(ref: str) -> Suite:
    """A suite by file path, or by name from the evals/ folder of the current directory."""
    path = Path(ref)
    if not path.is_file() and (Path("evals") / f"{ref}.yaml").is_file():
        path = Path("evals") / f"{ref}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in suite_files()) or "none found: run from a zhiwen checkout"
        raise ZhiwenError(f"no suite {ref!r} (a YAML file, or a name in ./evals: {known})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        suite = Suite.model_validate(raw)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()
        raise ZhiwenError(f"{path}: invalid suite: {' '.join(first[:3])}") from exc
    suite._file = path.resolve()
    return suite

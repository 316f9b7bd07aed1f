"""The ``zhiwen`` command: ingest, search, kb, ask, chat, serve, eval."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from zhiwen import __version__, service
from zhiwen.consoles import console, printable, shown
from zhiwen.errors import KnowledgeBaseNotFound, ZhiwenError, first_line
from zhiwen.feedback_cli import feedback_app
from zhiwen.graph.context import Context, context_from_settings
from zhiwen.keys_cli import keys_app
from zhiwen.memory.kb import SearchMode, kb_exists, list_kbs
from zhiwen.settings import DEFAULT_KB, get_settings, redact_url
from zhiwen.stage_progress import stage_progress


def _flag_takes_no_value() -> None:
    """Typer 0.29's rich help shows a flag's type (``--json <bool>``, ``--help <bool>``) as if it took a value,
    and ``--json true`` then fails with "unexpected extra argument". Its plain help shows none for flags;
    the rich one is made to agree (a display fix only: parsing is click's and unchanged)."""
    typers_own = typer.core.TyperOption.display_type_rich

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else typers_own(self, ctx)

    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flag_takes_no_value()
app = typer.Typer(
    help="知问 zhiwen: strict, sourced knowledge-base chat in Chinese and English.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(
    help="Knowledge bases: list them and their documents, delete documents, drop a base, set what answers may "
    "link to (allow) and the hotline refusals hand over to.",
    no_args_is_help=True,
)
app.add_typer(kb_app, name="kb")
app.add_typer(keys_app, name="keys")
app.add_typer(feedback_app, name="feedback")
err = console(stderr=True)
out = console()


def _print_version(value: bool) -> None:
    if value:
        out.print(f"zhiwen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """知问 zhiwen: strict, sourced knowledge-base chat in Chinese and English."""


KbOption = Annotated[str, typer.Option("--kb", help="Knowledge base name (any language).", show_default=True)]


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders: .txt .md .html .pdf, BEIR corpus .jsonl.")
    ],
    kb: KbOption = DEFAULT_KB,
) -> None:
    """Add documents to a knowledge base (created if missing); unchanged files are skipped."""
    from zhiwen.memory.source_names import source_name

    # A broken link is no typo: it goes on to be reported as one (exists() follows links).
    missing = [source_name(p) for p in paths if not p.exists() and not p.is_symlink()]
    if len(missing) == len(paths):  # a typo in the only path: one line, and no empty knowledge base made
        raise ZhiwenError(f"no such file or folder: {', '.join(missing)}; nothing ingested")
    made_here = not kb_exists(get_settings().kb_root, kb)
    try:
        if not _ingest_reporting(kb, paths):  # nothing readable (each file reported above)
            outcome = f"no knowledge base {kb!r} made" if made_here else f"{kb!r} unchanged"
            raise ZhiwenError(f"nothing to index: no file given could be read as a document; {outcome}")
    except BaseException:
        if made_here:  # made by this ingest and left empty: not listed as if it held something
            _drop_if_empty(kb)
        raise
    option = "" if kb == DEFAULT_KB else f" --kb {shlex.quote(kb)}"  # say how to reach what was just added
    err.print(f'ask it: zhiwen ask "…"{option}   ·   chat: zhiwen chat{option}', style="dim",
              highlight=False, markup=False)  # fmt: skip


def _ingest_reporting(kb: str, paths: list[Path]) -> int:
    """Ingest with a progress bar, then print what was skipped or flagged and the summary; returns how many
    of the documents are in the knowledge base now (added, replaced or unchanged)."""
    service.open_kb(kb, create=True)  # store errors (a bad ZHIWEN_CHROMA_URL...) before any progress bar
    with stage_progress(err) as update:
        report = service.ingest(kb, paths, lambda done, total: update("embedding chunks", done, total))
    for reason in report.skipped:
        err.print(f"[yellow]skipped[/] {shown(reason)}", highlight=False)
    for reason in report.flagged:  # ingested, but an operator should read it before customers see answers
        err.print(f"[red]flagged[/] {shown(reason)} (see `zhiwen kb docs`)", highlight=False)
    for source in report.gone:  # still answered from: say so, and how to take it out
        delete = f"zhiwen kb delete {shlex.quote(source)}" + (
            "" if kb == DEFAULT_KB else f" --kb {shlex.quote(kb)}"
        )
        err.print(f"[yellow]gone[/] {shown(source)}: no longer on disk, still searchable; `{shown(delete)}` removes it",
                  highlight=False)  # fmt: skip
    out.print(f"{printable(kb)}: {report.summary()}", highlight=False, markup=False)
    return report.added + report.replaced + report.unchanged


def _drop_if_empty(kb: str) -> None:
    """Drop a knowledge base if it holds no document, after a first ingest into it failed.

    An empty base left by a failing embeddings endpoint or store was listed (``kb list``, ``GET /v1/models``)
    and kept its name bound to the embedding model it was made with. Never waits for another writer (who then
    keeps it); the ingest's own error is what the user sees, so errors here are not shown."""
    try:
        service.drop_kb(kb, wait=False, only_if_empty=True)
    except Exception:
        pass  # gone already (a base that failed to open removes itself), or busy: nothing to add


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    kb: KbOption = DEFAULT_KB,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=1000, help="How many hits.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, bm25 or dense.")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of hits.")] = False,
) -> None:
    """Search a knowledge base without the LLM."""
    if mode not in ("hybrid", "bm25", "dense"):
        raise ZhiwenError(f"--mode must be hybrid, bm25 or dense, not {mode!r}")
    chosen: SearchMode = mode  # type: ignore[assignment]
    hits = service.search(kb, query, top_k=top_k, mode=chosen)
    if as_json:
        sys.stdout.write(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2) + "\n")
        return
    if not hits:
        out.print("no hits")
    for i, h in enumerate(hits, start=1):
        legs = " ".join(f"{k}#{int(v['rank'])}" for k, v in h.legs.items())
        where = h.metadata.get("source", "")
        out.print(f"[bold]\\[{i}][/] {h.score:.4f} ({legs}) {shown(where)}", highlight=False)
        out.print("    " + printable(h.text[:200].replace("\n", " ")), highlight=False, markup=False)


@kb_app.command("list")
def kb_list() -> None:
    """Knowledge bases with their document and chunk counts."""
    settings = get_settings()
    root = settings.kb_root
    if not settings.database_url:  # catalogs in the shared database need no folder to be listed
        root.mkdir(parents=True, exist_ok=True)  # a home that cannot be made is an error, not "no bases yet"
    rows = list_kbs(root)
    if not rows:
        where = "in the shared database (ZHIWEN_DATABASE_URL)" if settings.database_url else f"under {root}"
        out.print(f"no knowledge bases yet {where}; run `zhiwen ingest PATH --kb NAME`")
    for name, docs, chunks in rows:
        typer.echo(
            f"{printable(name)}\t{docs} documents\t{chunks} chunks"
        )  # tabs kept for cut -f (rich expands them)


@kb_app.command("docs")
def kb_docs(kb: KbOption = DEFAULT_KB) -> None:
    """Documents of a knowledge base; a document whose text reads as instructions to the assistant is flagged."""
    base = service.open_kb(kb)
    flags = base.catalog.flags()
    for d in base.documents():
        flagged = f"\tflagged: {printable('; '.join(flags[d.doc_id]))}" if d.doc_id in flags else ""
        chunks = f"{d.n_chunks} chunk" + ("" if d.n_chunks == 1 else "s")
        typer.echo(f"{d.doc_id}\t{chunks}\t{printable(d.source)}{flagged}")  # tabs kept, as kb list


@kb_app.command("allow")
def kb_allow(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            help="Domains (bank.example.com, subdomains included), e-mail addresses, phone numbers."
        ),
    ] = None,
    kb: KbOption = DEFAULT_KB,
    clear: Annotated[bool, typer.Option("--clear", help="Empty the list first.")] = False,
) -> None:
    """What answers from a knowledge base may link to or give as contact; anything else is dropped.

    Without items, prints the list. Items are added to it (--clear replaces it).
    """
    base = service.open_kb(kb)
    if not items and not clear:
        listed = base.allow_list()
        out.print("\n".join(listed) if listed else "(empty: answers may give no link, e-mail address or phone number)",
                  highlight=False, markup=False)  # fmt: skip
        return
    bad = [i for i in items or [] if not re.fullmatch(r"[\w.+@-]+|\+?[\d\s-]{3,20}", i.strip())]
    if bad:
        raise ZhiwenError(f"not a domain, e-mail address or phone number: {', '.join(map(repr, bad))}")
    kept = base.set_allow_list(([] if clear else base.allow_list()) + list(items or []))
    out.print(f"{kb}: {len(kept)} allowed: {', '.join(kept) or 'none'}", highlight=False, markup=False)


@kb_app.command("hotline")
def kb_hotline(
    number: Annotated[
        str | None, typer.Argument(help="The official hotline, e.g. 95588 or +86-10-6666-6666.")
    ] = None,
    kb: KbOption = DEFAULT_KB,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the hotline.")] = False,
) -> None:
    """The hotline the bank persona hands customers over to when it cannot help; answers may always give it.

    Without a number, prints it.
    """
    base = service.open_kb(kb)
    if number is None and not clear:
        out.print(
            base.hotline() or "(none: refusals point to a person without a number)",
            highlight=False,
            markup=False,
        )
        return
    if number is not None and not re.fullmatch(r"\+?\d[\d\s-]{2,20}\d", number.strip()):
        raise ZhiwenError(f"not a phone number: {number!r}")
    kept = base.set_hotline("" if clear else number or "")
    out.print(f"{kb}: hotline {kept or 'removed'}", highlight=False, markup=False)


@kb_app.command("delete")
def kb_delete(
    document: Annotated[str, typer.Argument(help="Document id, source path, or folder of sources.")],
    kb: KbOption = DEFAULT_KB,
) -> None:
    """Remove a document from both indexes of a knowledge base."""
    removed = service.open_kb(kb).delete_document(document)
    for d in removed:
        out.print(f"deleted {printable(d.source)} ({d.n_chunks} chunks)", highlight=False, markup=False)


@kb_app.command("drop")
def kb_drop(
    name: Annotated[str, typer.Argument(help="Knowledge base to delete with all its documents.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a whole knowledge base."""
    root = get_settings().kb_root
    if not kb_exists(root, name):  # said now, not after a question about it; no advice on making it
        known = ", ".join(n for n, _, _ in list_kbs(root)) or "none"
        raise KnowledgeBaseNotFound(f"no knowledge base named {name!r} to drop (existing: {known})")
    if not yes and not _confirm(f"delete knowledge base {name!r} and all its documents? [y/N]: "):
        raise typer.Exit(1)
    service.drop_kb(name)
    out.print(f"dropped {printable(name)}", highlight=False, markup=False)


def _confirm(question: str) -> bool:
    """Yes only for y or yes. Standard input at its end (a script, `< /dev/null`) is an error that says what
    to do instead; typer's confirm called it an interrupt (exit 130)."""
    try:
        answer = input(question)
    except EOFError:
        raise ZhiwenError(
            "no answer to the confirmation (standard input ended); pass --yes to skip it"
        ) from None
    return answer.strip().lower() in ("y", "yes")


ThreadOption = Annotated[
    str | None, typer.Option("--thread", help="Conversation id; reuse it to continue a conversation.")
]


def _known_model(name: str | None) -> str | None:
    """Refused at once: `zhiwen mcp` and `demo` took any name and failed every turn later."""
    from zhiwen.tools.models import MODELS

    if name is not None and name not in MODELS:
        raise typer.BadParameter(f"unknown local model {name!r}; choose one of: {', '.join(MODELS)}")
    return name


ModelOption = Annotated[
    str | None,
    typer.Option(
        "--local-model",
        help="Embedded model when ZHIWEN_LLM_BASE_URL is unset: qwen2.5-0.5b, smollm2-135m.",
        callback=_known_model,
    ),
]


CheckedOnlyOption = Annotated[
    bool,
    typer.Option(
        "--checked-only",
        help="Show an answer only after the quality gate has checked it (no draft that is then refused).",
    ),
]


def _context(kb: str, local_model: str | None, checked_only: bool = False) -> Context:
    return context_from_settings(kb=kb, local_model=local_model, stream_drafts=not checked_only)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    kb: KbOption = DEFAULT_KB,
    thread: ThreadOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print answer, sources, quality, reasoning, intent.")
    ] = False,
    local_model: ModelOption = None,
    checked_only: CheckedOnlyOption = False,
) -> None:
    """Answer one question from a knowledge base (streams the answer unless --json)."""
    from zhiwen.chat_cli import ask_once

    if not question.strip():
        raise ZhiwenError("the question is empty")

    asyncio.run(ask_once(question, _context(kb, local_model, checked_only), thread, as_json, out))


@app.command()
def chat(
    kb: KbOption = DEFAULT_KB,
    thread: ThreadOption = None,
    local_model: ModelOption = None,
    checked_only: CheckedOnlyOption = False,
) -> None:
    """Interactive streaming chat with sources; uses the embedded model unless ZHIWEN_LLM_BASE_URL is set."""
    from zhiwen.chat_cli import chat_loop

    asyncio.run(chat_loop(_context(kb, local_model, checked_only), thread, out))


SAMPLE_HOTLINE = "95500-88"  # zhiwen/sample_kb/credit-card-gold.md, "挂失"


@app.command()
def demo(local_model: ModelOption = None) -> None:
    """Ingest the bundled bilingual sample knowledge base (once) and open a chat on it."""
    sample = Path(str(resources.files("zhiwen") / "sample_kb"))
    err.print("zhiwen demo: indexing the bundled sample knowledge base 'sample'…")
    report = service.ingest("sample", [sample])
    err.print(f"zhiwen demo: {report.summary()}")
    base = service.open_kb("sample")
    if not base.hotline():
        # The sample bank's own hotline, as its documents give it: answers may give only allowed contacts, so
        # without it "信用卡遗失后应该怎么办？" was refused (its one sentence names the number); refusals hand over to it.
        base.set_hotline(SAMPLE_HOTLINE)
    if not get_settings().llm_base_url:  # with an endpoint set no model is started here
        err.print("zhiwen demo: starting the embedded model (first start assembles and checks it)…")
    chat(kb="sample", thread=None, local_model=local_model)


@app.command("eval")
def eval_suite(
    suite: Annotated[
        str | None, typer.Argument(help="Suite YAML file, or a name under ./evals (e.g. smoke).")
    ] = None,
    list_suites: Annotated[
        bool,
        typer.Option("--list", help="List the suites under ./evals, whether each can run here, and exit."),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder (default: evals/runs/<the suite's name>, from here)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only the first N questions (floors are checked on what they measure)."
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            help="Run and report only this configuration of the suite (repeatable; default: all of them).",
        ),
    ] = None,
) -> None:
    """Run an evaluation suite (resumable) and write records, summary.json, summary.md and report.html."""
    from zhiwen.evals.dataset import load_eval_set
    from zhiwen.evals.report import write_reports
    from zhiwen.evals.runner import run_suite
    from zhiwen.evals.suite import load_suite
    from zhiwen.evals.summary import check_limits, gate_ledger, read_records, rescore, summarize

    if list_suites:
        _list_suites()
        return
    if suite is None:
        raise ZhiwenError("name a suite (e.g. `zhiwen eval smoke`), or list them with `zhiwen eval --list`")
    spec = load_suite(suite)
    chosen = spec.only(config) if config else spec
    folder = out or Path("evals") / "runs" / spec.name
    with stage_progress(err) as update:
        files = asyncio.run(run_suite(spec, folder, update, limit, config))
    records = {name: rescore(read_records(path), spec) for name, path in files.items()}
    if limit:  # report the questions this run was asked for, not every record an earlier run left
        asked = {q.id for q in load_eval_set(spec).questions[:limit]}
        records = {name: [r for r in rs if r.get("id") in asked] for name, rs in records.items()}
    summary = {name: summarize(rs, spec) for name, rs in records.items()}
    failures = check_limits(summary, chosen, partial=bool(limit))
    ledgers = {name: gate_ledger(rs, spec) for name, rs in records.items()}
    paths = write_reports(folder, spec.name, summary, records, failures, ledgers)
    sys.stdout.write(paths["markdown"].read_text(encoding="utf-8"))
    err.print(f"reports: {paths['html']} · {paths['json']}", highlight=False)
    if failures:
        raise typer.Exit(1)


def _list_suites() -> None:
    """A table of the suites: which can run here, and the dataset folder each of the others waits for."""
    from rich.table import Table

    from zhiwen.evals.suite import datasets_root, load_suite, suite_files

    files = suite_files()
    if not files:
        raise ZhiwenError("no suites in ./evals: run from a zhiwen checkout, or pass a suite's YAML file")
    table = Table(box=None, pad_edge=False)
    table.add_column("suite", no_wrap=True)
    table.add_column("runs here")
    table.add_column("dataset", overflow="fold")
    for path in files:
        try:
            spec = load_suite(str(path))
        except ZhiwenError as exc:
            table.add_row(path.stem, "invalid", str(exc))
            continue
        found = (spec.dataset_path / "corpus.jsonl").exists()
        table.add_row(spec.name, "yes" if found else "no", str(spec.dataset_path))
    out.print(table)
    out.print(
        f"datasets are looked for in {datasets_root()} (ZHIWEN_DATASETS); `zhiwen eval NAME` of a suite "
        "that cannot run says where to get its dataset",
        highlight=False,
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes (each starts its own model unless ZHIWEN_LLM_BASE_URL is set)."
        ),
    ] = 1,
) -> None:
    """Serve the OpenAI-compatible API (needs ZHIWEN_API_KEYS, or ZHIWEN_ALLOW_OPEN=true for local use)."""
    import uvicorn

    from zhiwen.channels.feishu.settings import refuse_half_configured
    from zhiwen.memory.checkpointer import checkpoint_url
    from zhiwen.memory.pg_pool import check_reachable
    from zhiwen.server.app import create_app, refuse_unguarded
    from zhiwen.server.settings import get_server_settings

    refuse_unguarded(get_server_settings())  # bad settings: one line here, not a restart loop of workers
    try:
        refuse_half_configured()
    except SystemExit as exc:  # its text, in the CLI's one-line form
        raise ZhiwenError(str(exc.code).removeprefix("zhiwen serve: ")) from None
    if url := checkpoint_url():  # unreachable: one line here, not a traceback from the server's start-up
        check_reachable(url)
    _check_can_listen(host, port)
    _warn_if_the_bot_has_no_base()
    if workers > 1:
        uvicorn.run("zhiwen.server.app:app", host=host, port=port, workers=workers, log_level="info")
    else:
        uvicorn.run(create_app(), host=host, port=port, log_level="info")


def _warn_if_the_bot_has_no_base() -> None:
    """The Feishu bot's knowledge base may be made after the server starts, but until then every question
    gets "cannot answer right now": said once here rather than only per message in the log."""
    from zhiwen.channels.feishu.settings import FeishuSettings

    bot = FeishuSettings()
    root = get_settings().kb_root
    if bot.enabled and bot.kb and not kb_exists(root, bot.kb):
        known = ", ".join(n for n, _, _ in list_kbs(root)) or "none yet"
        err.print(
            f"zhiwen serve: warning: ZHIWEN_FEISHU_KB names {bot.kb!r}, which does not exist (existing: {known}); "
            "the bot answers nothing until it is made",
            style="yellow", highlight=False, markup=False,
        )  # fmt: skip


def _check_can_listen(host: str, port: int) -> None:
    """A port in use or a host that is not this machine's: one line before the app starts (uvicorn says it
    only after start-up, as its own log line, and exits 3)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            if family == socket.AF_INET6:  # as asyncio's create_server: "::" leaves IPv4's 0.0.0.0 to others
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ZhiwenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@app.command("mcp")
def mcp_stdio(kb: KbOption = DEFAULT_KB, local_model: ModelOption = None) -> None:
    """Serve the knowledge bases to an MCP client over stdio (list_knowledge_bases, search_knowledge_base, ask).

    --kb is the knowledge base a tool call uses when it names none. Over HTTP, `zhiwen serve` has the same
    tools at /mcp.
    """
    from zhiwen.mcp_server import run_stdio

    service.open_kb(kb)  # a wrong --kb is one line on stderr now, not an error inside the client later
    run_stdio(kb, local_model)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1."""
    try:
        code = app(standalone_mode=False, prog_name="zhiwen")  # the same name under `python -m`
    except typer.TyperException as exc:  # click's errors (typer vendors click; its classes are private)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        message = message.replace("Value error, ", "")  # typer checks a Literal option with pydantic's words
        if type(exc).__name__ == "NoArgsIsHelpError":  # `zhiwen` or `zhiwen kb` alone: typer showed the help
            sys.exit(2)
        # A bad option or argument: one line, not click's framed panel.
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err.print(f"zhiwen: error: {message}{where}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        err.print("zhiwen: interrupted")
        sys.exit(130)
    except ZhiwenError as exc:
        err.print(f"zhiwen: error: {exc.detail}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except ValidationError as exc:  # a ZHIWEN_* variable with a value its setting does not accept
        err.print(f"zhiwen: error: {_invalid_settings(exc)}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("zhiwen: interrupted")
        sys.exit(130)
    except UnicodeEncodeError as exc:  # an argument or a setting holding bytes or characters it cannot carry
        # Only the offending characters: the string may be a secret (a key pasted with a no-break space).
        shown = exc.object[exc.start : exc.end] if isinstance(exc.object, str) else "?"
        err.print(
            f"zhiwen: error: text that is not valid {exc.encoding}: {shown!r}", highlight=False, markup=False
        )
        sys.exit(1)
    except OSError as exc:  # the file system refused: a path that is a file, a read-only or full disk
        err.print(f"zhiwen: error: {_os_error(exc)}", highlight=False, markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _os_error(exc: OSError) -> str:
    """``Permission denied: /srv/zhiwen/keys.sqlite`` rather than a traceback."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return first_line(exc)


def _invalid_settings(exc: ValidationError) -> str:
    """One line naming each bad variable: ZHIWEN_LLM_THREADS: Input should be ... (got '0')."""
    prefix = {"Settings": "ZHIWEN_", "ServerSettings": "ZHIWEN_", "FeishuSettings": "ZHIWEN_FEISHU_"}.get(
        exc.title
    )
    if prefix is None:
        return str(exc).splitlines()[0]
    parts = []
    for e in exc.errors():
        name = prefix + "_".join(str(p) for p in e["loc"]).upper()
        given = e.get("input")
        shown = redact_url(given) if isinstance(given, str) else given  # a URL's password is never printed
        parts.append(f"{name}: {e['msg'].removeprefix('Value error, ')} (got {shown!r})")
    return "; ".join(parts)


if __name__ == "__main__":
    main()

"""``abonent nlu``: parse, eval, review, on the same knowledge base and model as the server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from abonent.cli_support import ReadableGroup, database_url

nlu_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Intent recognition: parse, evaluate, review.",
    no_args_is_help=True,
)

KbOption = Annotated[
    Path | None,
    typer.Option(
        "--kb", metavar="DIR", help="Knowledge-base directory (default: the package's kb/intents)."
    ),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Model cache (default: ABONENT_NLU_CACHE_DIR or the user cache directory).",
    ),
]


@nlu_app.command()
def parse(kb: KbOption = None, cache_dir: CacheOption = None) -> None:
    """UTF-8 lines on stdin → one JSON object per line: {"text", "intent", "confidence"}."""
    from abonent.nlu.engine import Engine

    engine = Engine.load(kb, cache_dir=cache_dir)
    stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    out = sys.stdout
    lines = (
        (raw.decode("utf-8", errors="replace") for raw in stdin)
        if stdin is not None
        else iter(sys.stdin)
    )
    for line in lines:
        text = line.rstrip("\r\n")
        result = engine.parse(text)
        out.write(
            json.dumps(
                {"text": text, "intent": result.intent, "confidence": result.confidence},
                ensure_ascii=False,
            )
            + "\n"
        )
        out.flush()


@nlu_app.command("eval")
def eval_(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.tsv",
            help="Tab-separated, header line `text<TAB>intent`; more columns are ignored.",
            show_default=False,
        ),
    ],
    kb: KbOption = None,
    cache_dir: CacheOption = None,
) -> None:
    """Accuracy, per-intent precision/recall/F1, frequent confusions, misclassified lines."""
    from abonent.nlu.engine import Engine
    from abonent.nlu.eval import EvalFileError, evaluate, format_report, read_tsv

    try:
        rows = read_tsv(file)
    except (OSError, EvalFileError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    engine = Engine.load(kb, cache_dir=cache_dir)
    for line in format_report(evaluate(engine, rows)):
        typer.echo(line)


@nlu_app.command()
def review(
    file: Annotated[
        Path | None,
        typer.Argument(
            metavar="FILE",
            help="One message per line ('-' for stdin); omitted: the stored misses.",
            show_default=False,
        ),
    ] = None,
    days: Annotated[
        int, typer.Option(metavar="DAYS", help="Without FILE: misses of the last DAYS days.")
    ] = 30,
    kb: KbOption = None,
    cache_dir: CacheOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per group.")] = False,
    min_similarity: Annotated[
        float, typer.Option(metavar="0..1", help="Cosine similarity to join a group.")
    ] = 0.35,
) -> None:
    """Group unrecognised messages by similarity, with the intents each group resembles."""
    from abonent.nlu.engine import Engine
    from abonent.nlu.review import group_messages

    if file is None:
        texts = asyncio.run(_stored_misses(days))
    elif str(file) == "-":
        texts = sys.stdin.read().splitlines()
    else:
        texts = file.read_text(encoding="utf-8").splitlines()
    engine = Engine.load(kb, cache_dir=cache_dir)
    groups = group_messages(texts, engine, min_similarity=min_similarity)
    for number, group in enumerate(groups, start=1):
        if as_json:
            typer.echo(json.dumps(group.to_dict(), ensure_ascii=False))
            continue
        resembles = ", ".join(f"{i} {s:.2f}" for i, s in group.intents)
        typer.echo(f"#{number}  {group.size} message(s); resembles: {resembles}")
        for text in group.texts:
            typer.echo(f"    {text}")


async def _stored_misses(days: int) -> list[str]:
    """What the server kept of the messages it did not understand (configured database)."""
    from abonent.analytics.misses import recent_misses
    from abonent.db.session import Database

    db = Database(database_url())
    try:
        return await recent_misses(db, days)
    finally:
        await db.dispose()


@nlu_app.command()
def train(
    job: Annotated[
        int | None,
        typer.Option(metavar="ID", help="Run this retraining (started from the editors' page)."),
    ] = None,
    kb: KbOption = None,
    cache_dir: CacheOption = None,
    config: Annotated[
        str | None,
        typer.Option(
            metavar="JSON", help="The training configuration (the server passes its own)."
        ),
    ] = None,
) -> None:
    """Retrain on the knowledge base plus the editors' changes; the model goes in use on
    every server only if it is not worse on the held-out checks."""
    from abonent.nlu.classifier import TrainConfig
    from abonent.nlu.kb import DEFAULT_KB_DIR

    cfg = TrainConfig.from_dict(json.loads(config)) if config else TrainConfig()
    code = asyncio.run(_train(job, kb or DEFAULT_KB_DIR, cache_dir, cfg))
    raise typer.Exit(code)


async def _train(job: int | None, kb: Path, cache_dir: Path | None, cfg: Any) -> int:
    from abonent.config import get_settings
    from abonent.db.session import Database
    from abonent.logs import setup_logging
    from abonent.nlu.retrain import Busy, run_job, start_training

    settings = get_settings()
    setup_logging(settings.log_level)
    db = Database(database_url())
    try:
        if job is None:
            try:
                job = (await start_training(db, None)).id
            except Busy as busy:
                typer.echo(f"retraining {busy.training_id} is under way", err=True)
                return 3
        report = await run_job(
            db,
            job,
            kb,
            cache_dir,
            config=cfg,
            tolerance=settings.nlu.retrain_tolerance,
            changed_days=settings.nlu.changed_days,
        )
    except Exception as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    finally:
        await db.dispose()
    verdict = "accepted" if report["accepted"] else "rejected (the model in use stays)"
    typer.echo(
        f"retraining {job} {verdict}: held-out accuracy {report['before']['kb']:.3f} → "
        f"{report['after']['kb']:.3f} (knowledge base), {report['before']['review']:.3f} → "
        f"{report['after']['review']:.3f} (editors' examples); "
        f"{len(report['changed'])} recent message(s) change their answer"
    )
    return 0 if report["accepted"] else 4


@nlu_app.command("diff-edits")
def diff_edits(kb: KbOption = None) -> None:
    """The editors' changes stored in the database as a diff of the YAML files."""
    from abonent.nlu.edits import diff
    from abonent.nlu.kb import DEFAULT_KB_DIR

    edits = asyncio.run(_edits())
    typer.echo(diff(kb or DEFAULT_KB_DIR, edits), nl=False)


@nlu_app.command("export-edits")
def export_edits(
    target: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Where to write the knowledge base with the edits (may be --kb itself).",
            show_default=False,
        ),
    ],
    kb: KbOption = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Forget the exported edits in the database.")
    ] = False,
) -> None:
    """Write the YAML knowledge base with the editors' changes applied."""
    from abonent.nlu.edits import write_export
    from abonent.nlu.kb import DEFAULT_KB_DIR

    edits = asyncio.run(_edits())
    changed = write_export(kb or DEFAULT_KB_DIR, edits, target)
    for name in changed:
        typer.echo(f"wrote {target / name}")
    typer.echo(f"{len(edits)} edit(s), {len(changed)} file(s) changed")
    if clear and edits:
        asyncio.run(_clear(edits[-1].id))


async def _edits() -> list[Any]:
    from abonent.db.session import Database
    from abonent.nlu.edits import load_edits

    db = Database(database_url())
    try:
        return list(await load_edits(db))
    finally:
        await db.dispose()


async def _clear(upto: int) -> None:
    from abonent.db.session import Database
    from abonent.nlu.edits import clear_edits

    db = Database(database_url())
    try:
        await clear_edits(db, upto)
    finally:
        await db.dispose()

"""The ``abonent`` command: the server, the demo, and the admin subcommands."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from abonent.analytics.cli import stats_app
from abonent.automation.reminders.cli import reminders_app
from abonent.billing.cli import billing_app
from abonent.channels.cli import channels_app
from abonent.cli_support import (
    DEMO_CONFIG,
    DEMO_DATABASE_URL,
    ReadableGroup,
    choose_database,
    database_url,
)
from abonent.config import Settings, get_settings
from abonent.nlu.cli import nlu_app
from abonent.operators.cli import users_app

app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    no_args_is_help=True,
)
app.add_typer(billing_app, name="billing")
app.add_typer(nlu_app, name="nlu")
app.add_typer(channels_app, name="channels")
app.add_typer(users_app, name="users")
app.add_typer(stats_app, name="stats")
app.add_typer(reminders_app, name="reminders")


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.toml",
            help="Settings file (instead of ABONENT_CONFIG).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database URL (instead of ABONENT_DATABASE_URL), e.g. sqlite:///abonent.db.",
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Work on the demo's data: abonent-demo.db here and the demo settings.",
        ),
    ] = False,
) -> None:
    """Abonent: chat centre and virtual consultant for utilities.

    Commands that read data name their database on stderr and refuse to start on one
    that does not exist. After `abonent demo`, run them as `abonent --demo users list`.
    """
    choose_database(config, database, demo)


def _run_server(
    settings: Settings, host: str, port: int, extra: dict[str, object] | None = None
) -> None:
    import uvicorn

    from abonent.app import create_app
    from abonent.logs import setup_logging

    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings, extra=extra),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ws_ping_interval=20,
        timeout_graceful_shutdown=5,
    )


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
) -> None:
    """Run the server on the configured database (the schema is migrated at start)."""
    database_url(create=True)
    _run_server(get_settings(), host, port)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date and exit."""
    from abonent.db.migrate import upgrade
    from abonent.db.session import Database

    url = database_url(create=True)

    async def run() -> None:
        db = Database(url)
        await upgrade(db.engine)
        await db.dispose()

    asyncio.run(run())
    typer.echo("Schema is up to date.")


@app.command()
def demo(
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option(metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
) -> None:
    """Start a self-contained demo: SQLite file, demo company and accounts, the widget at /."""
    os.environ.setdefault("ABONENT_CONFIG", str(DEMO_CONFIG))
    os.environ.setdefault("ABONENT_DATABASE_URL", DEMO_DATABASE_URL)
    os.environ.setdefault("ABONENT_PUBLIC_URL", f"http://{host}:{port}")
    get_settings.cache_clear()
    settings = get_settings()
    database_url(create=True)

    from abonent.billing.base import AccountInfo
    from abonent.billing.readings import format_rub
    from abonent.db.migrate import upgrade
    from abonent.db.session import Database
    from abonent.demo import seed_demo_accounts, seed_demo_users

    async def seed() -> tuple[list[AccountInfo], list[tuple[str, str, str]]]:
        db = Database(settings.database_url)
        await upgrade(db.engine)
        accounts = await seed_demo_accounts(db)
        users = await seed_demo_users(db)
        await db.dispose()
        return accounts, users

    accounts, users = asyncio.run(seed())
    plans = {"single": "однотарифный", "two_zone": "двухзонный", "three_zone": "трёхзонный"}
    typer.echo("")
    typer.echo(f"Abonent demo: {settings.company.name}")
    typer.echo(f"  Site with the chat widget:  http://{host}:{port}/")
    typer.echo(f"  API documentation:          http://{host}:{port}/docs")
    typer.echo(f"  Operator workspace:         http://{host}:{port}/operator")
    for login, password, role in users:
        typer.echo(f"    {role:<11} login {login!r}, password {password!r}")
    typer.echo(f"  Operator API token:         {settings.operators.api_token}")
    typer.echo("  Demo accounts to try:")
    for acc in accounts:
        typer.echo(
            f"    {acc.number}  {plans.get(acc.plan, acc.plan)}, баланс {format_rub(acc.balance)}"
        )
    typer.echo("")
    extra: dict[str, object] = {
        "demo_accounts": [
            {"number": a.number, "plan": plans.get(a.plan, a.plan), "holder": a.holder}
            for a in accounts
        ]
    }
    _run_server(settings, host, port, extra)


def main() -> None:
    app()

"""What every ``abonent`` command shares: readable help, and the database it works on.

Help: typer prints each parameter's Python type (``<bool>`` after a flag,
``<list[str]>``, ``{file}``), which reads as noise to an admin. Every app is built
with :class:`ReadableGroup`, which gives each option a metavar that is a word (``PORT``,
``FILE.csv``, ``DATE``) and none to flags, once, for the whole command tree.

Database: a command that reads data on a fresh directory must not quietly create an
empty ``abonent.db`` and print nothing while the data lives elsewhere (the demo's in
``abonent-demo.db``). :func:`database_url` names the database on stderr and refuses a
SQLite file that does not exist, saying how to point at the right one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from sqlalchemy.engine import make_url
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from abonent.config import get_settings

DEMO_CONFIG = Path(__file__).parent / "demo" / "demo.toml"
DEMO_DB = "abonent-demo.db"
DEMO_DATABASE_URL = f"sqlite+aiosqlite:///{DEMO_DB}"


class _NamedArgument(TyperArgument):
    """An argument whose help row shows its metavar once, without a type after it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        # typer writes a required argument as ``{file}``; the usual form is bare.
        name = self.metavar or _word(self)
        name = name if self.required else f"[{name}]"
        return f"{name}..." if self.nargs != 1 else name


def _word(param: TyperOption | TyperArgument) -> str:
    """A metavar for a parameter that did not choose one: its long name in capitals."""
    names = [o for o in param.opts if o.startswith("--")] or [param.name or "value"]
    return names[0].lstrip("-").replace("-", "_").upper()


def make_readable(command: TyperCommand | TyperGroup, ctx: typer.Context | None = None) -> None:
    """Give every parameter of ``command`` and its subcommands a readable metavar."""
    ctx = ctx or typer.Context(command)
    params = list(command.params)
    help_option = command.get_help_option(ctx)  # built lazily, then cached on the command
    if help_option is not None:
        params.append(help_option)
    for param in params:
        if isinstance(param, TyperOption):
            if param.is_flag:
                param.metavar = ""
            elif param.metavar is None:
                param.metavar = _word(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = _word(param)
            param.__class__ = _NamedArgument
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                make_readable(sub, typer.Context(sub, parent=ctx))


class ReadableGroup(TyperGroup):
    """The class of every ``typer.Typer`` app of Abonent (``cls=ReadableGroup``)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        # Here rather than in __init__: typer appends the completion options after
        # building the group.
        make_readable(self)
        return super().make_context(*args, **kwargs)


def _describe(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            return "SQLite in memory"
        return f"SQLite file {Path(database).resolve()}"
    return parsed.render_as_string(hide_password=True)


def database_url(*, create: bool = False) -> str:
    """The configured database URL, named on stderr.

    With ``create`` (migrate, imports, adding a user) a missing SQLite file is made;
    without it the command stops with exit code 1 and says how to point it elsewhere.
    """
    url = get_settings().database_url
    typer.echo(f"Database: {_describe(url)}", err=True)
    parsed = make_url(url)
    database = parsed.database or ""
    if create or parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return url
    path = Path(database)
    if path.is_file():
        return url
    command = " ".join(sys.argv[1:]) if Path(sys.argv[0]).name == "abonent" else ""
    command = command or "<command>"
    hint = [
        f"Error: there is no database at {path.resolve()} (nothing was created).",
        "Point the command at the server's database with --database URL, ABONENT_DATABASE_URL",
        "or database_url in the settings file (--config FILE.toml or ABONENT_CONFIG), e.g.",
        f"  abonent --database sqlite:////srv/abonent/abonent.db {command}",
    ]
    if Path(DEMO_DB).is_file():
        hint.append(f"The demo's data is here, in {DEMO_DB}: abonent --demo {command}")
    else:
        hint += [
            f"The demo keeps its data in {DEMO_DB} in the directory where `abonent demo` ran:",
            f"  cd that/directory && abonent --demo {command}",
        ]
    typer.echo("\n".join(hint), err=True)
    raise typer.Exit(1)


def choose_database(config: Path | None, database: str | None, demo: bool) -> None:
    """Apply the root options: they win over the environment, as typed last."""
    if demo:
        os.environ["ABONENT_CONFIG"] = str(DEMO_CONFIG)
        os.environ["ABONENT_DATABASE_URL"] = DEMO_DATABASE_URL
    if config is not None:
        os.environ["ABONENT_CONFIG"] = str(config)
    if database is not None:
        os.environ["ABONENT_DATABASE_URL"] = database
    if demo or config is not None or database is not None:
        get_settings.cache_clear()

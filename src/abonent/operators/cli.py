"""``abonent users …``: workspace accounts from the command line (first admin, resets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from abonent.cli_support import ReadableGroup, database_url
from abonent.db.migrate import upgrade
from abonent.db.session import Database
from abonent.operators import users
from abonent.operators.auth import ROLES

users_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Workspace users: operators, supervisors, admins.",
)

T = TypeVar("T")


def _run(action: Callable[[Database], Awaitable[T]], *, create: bool = False) -> T:
    url = database_url(create=create)

    async def main() -> T:
        db = Database(url)
        try:
            await upgrade(db.engine)
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except users.UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _password(given: str | None) -> str:
    if given is not None:
        return given
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
def add(
    login: str,
    role: Annotated[
        str, typer.Option(metavar="ROLE", help=f"One of: {', '.join(ROLES)}.")
    ] = "operator",
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="Shown to colleagues and customers.")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(metavar="GROUP", help="Operator group (repeatable).")
    ] = None,
    max_chats: Annotated[
        int, typer.Option(metavar="N", help="Conversations assigned at once.")
    ] = 3,
    password: Annotated[
        str | None,
        typer.Option(
            metavar="PASSWORD", help="Asked for when omitted (keeps it out of shell history)."
        ),
    ] = None,
) -> None:
    """Create a user."""
    secret = _password(password)
    user = _run(
        lambda db: users.add_user(
            db, login, secret, name=name, role=role, groups=group, max_chats=max_chats
        ),
        create=True,
    )
    typer.echo(f"created {user.role} {user.login}")


@users_app.command("passwd")
def passwd(
    login: str,
    password: Annotated[
        str | None, typer.Option(metavar="PASSWORD", help="Asked for when omitted.")
    ] = None,
) -> None:
    """Set a new password (signs the user out everywhere)."""
    secret = _password(password)
    _run(lambda db: users.set_password(db, login, secret))
    typer.echo(f"password of {login} changed")


@users_app.command("disable")
def disable(login: str) -> None:
    """Disable a user: signed out at once, cannot sign in."""
    _run(lambda db: users.set_active(db, login, False))
    typer.echo(f"{login} disabled")


@users_app.command("enable")
def enable(login: str) -> None:
    """Enable a disabled user again."""
    _run(lambda db: users.set_active(db, login, True))
    typer.echo(f"{login} enabled")


@users_app.command("list")
def list_() -> None:
    """Every user with role, status and whether active."""
    for user in _run(users.list_users):
        state = "active" if user.active else "disabled"
        typer.echo(f"{user.login}\t{user.role}\t{user.status}\t{state}\t{user.name}")

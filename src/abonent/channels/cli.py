"""``abonent channels …``: point each messenger at this server and see how it is doing.

``register`` calls each platform's own registration method for
``<public URL>/webhooks/<id>`` (or prints the dashboard steps where a platform has
none); ``check`` asks each platform how it sees the channel. Exit code 1 when any
channel failed, so a deployment script notices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from abonent.channels.base import MessengerChannel
from abonent.channels.registry import build_channels, messengers
from abonent.cli_support import ReadableGroup
from abonent.config import get_settings

channels_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Messenger channels: webhook registration and status.",
)


async def _each(
    selected: list[str] | None, action: Callable[[MessengerChannel], Awaitable[str]]
) -> bool:
    channels = messengers(build_channels(get_settings()))
    if selected:
        unknown = sorted(set(selected) - set(channels))
        if unknown:
            typer.echo(f"unknown channel(s): {', '.join(unknown)}", err=True)
            return False
        channels = {cid: c for cid, c in channels.items() if cid in selected}
    if not channels:
        typer.echo("no messenger channels are configured ([[channels]] in the config file)")
        return True
    ok = True
    for channel in channels.values():
        try:
            typer.echo(await action(channel))
        except Exception as exc:  # one broken channel must not hide the others' status
            ok = False
            typer.echo(f"{channel.id} ({channel.type}): FAILED: {exc}", err=True)
        finally:
            await channel.stop()
    return ok


@channels_app.command()
def register(
    public_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="HTTPS address the platforms reach this server at (default: public_url).",
        ),
    ] = None,
    channel: Annotated[
        list[str] | None, typer.Option(metavar="ID", help="Only this channel id (repeatable).")
    ] = None,
) -> None:
    """Register this server's webhook with every configured messenger."""
    base = public_url or get_settings().public_url
    if not base:
        typer.echo("give --public-url or set public_url in the configuration", err=True)
        raise typer.Exit(2)
    if not asyncio.run(_each(channel, lambda c: c.register(base))):
        raise typer.Exit(1)


@channels_app.command()
def check(
    channel: Annotated[
        list[str] | None, typer.Option(metavar="ID", help="Only this channel id (repeatable).")
    ] = None,
) -> None:
    """Report how each platform sees its channel (token valid, webhook set, errors)."""
    if not asyncio.run(_each(channel, lambda c: c.check())):
        raise typer.Exit(1)

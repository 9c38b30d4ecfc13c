"""create_app(): wires settings, database, bus, channels, bot, pipeline and the routers.

Everything a request needs hangs off one ``Runtime`` object on ``app.state``; the
background loops (outbox sender, bus listener) start and stop with the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from abonent import __version__
from abonent.analytics.campaigns import ReminderStatsConsumer
from abonent.analytics.reports import Stats
from abonent.analytics.rollup import StatsConsumer
from abonent.automation.hook_runtime import Hooks, build_hooks
from abonent.automation.hooks import HookServices
from abonent.automation.reminders.sender import ReminderSender
from abonent.automation.webhooks import WebhookConsumer, WebhookSender
from abonent.billing import build_billing, build_delivery
from abonent.billing.base import Billing
from abonent.billing.queue import ReadingsDelivery
from abonent.bot.dialog import Services
from abonent.bot.engine import Bot
from abonent.channels.base import Channel
from abonent.channels.registry import build_channels
from abonent.config import Settings, get_settings
from abonent.core.attachments import Fetcher, Store, default_root
from abonent.core.bus import LocalBus, make_bus
from abonent.core.contacts import ContactDirectory
from abonent.core.eventlog import Consumer, EventConsumers
from abonent.core.metrics import Metrics
from abonent.core.outbox import OutboxSender
from abonent.core.pipeline import Pipeline, StrandedSweeper
from abonent.crm import Crm, build_crm
from abonent.db.migrate import upgrade
from abonent.db.session import Database
from abonent.nlu.base import Understander
from abonent.nlu.kb import KnowledgeBase, values_from_settings
from abonent.nlu.keywords import KeywordUnderstander
from abonent.operators.desk import Desk
from abonent.operators.live import DeskLive

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    bus: LocalBus
    channels: dict[str, Channel]
    billing: Billing
    understander: Understander
    pipeline: Pipeline
    # Answers what a process that died left unanswered.
    sweeper: StrandedSweeper
    sender: OutboxSender
    metrics: Metrics
    desk: Desk
    live: DeskLive
    crm: Crm
    consumers: EventConsumers
    stats: Stats
    # Customers' and operators' files, and the loop that fetches messengers' ones.
    files: Store
    fetcher: Fetcher
    # The company's Python hooks (automation/hooks.py): ``status()`` for the admin page.
    hooks: Hooks
    extra: dict[str, Any] = field(default_factory=dict)
    # Passes readings queued while an HTTP billing was down on to it (None: local billing).
    readings_delivery: ReadingsDelivery | None = None
    # Posts the events ``[[webhooks]]`` want (None: none configured).
    webhooks: WebhookSender | None = None
    # Payment and readings reminders (None: ``reminders.enabled = false``).
    reminders: ReminderSender | None = None


Understanding = tuple[Understander, Callable[[], KnowledgeBase | None]]


def load_understanding() -> Understanding:
    """The trained consultant, loaded (or trained) before returning: for tests and
    tools that want the model at once. The server does not wait: see
    ``start_understanding``. The keyword matcher if it cannot load."""
    try:
        from abonent.nlu.engine import Engine

        engine = Engine.load()
    except Exception:
        log.exception("the consultant could not load; falling back to keyword matching")
        return KeywordUnderstander(), lambda: None
    log.info(
        "consultant loaded in %.2fs (%s)",
        engine.load_seconds,
        "cached" if engine.from_cache else "trained",
    )
    return engine, lambda: engine.kb


def start_understanding() -> Understanding:
    """The server's consultant: answers with the knowledge base's keywords at once and
    switches to the trained model when the background load (or, on a cold cache, the
    training) is done. A knowledge base that cannot load leaves the plain keywords."""
    try:
        from abonent.nlu.consultant import Consultant

        consultant = Consultant()
    except Exception:
        log.exception("the knowledge base could not load; falling back to keyword matching")
        return KeywordUnderstander(), lambda: None
    consultant.start()
    return consultant, lambda: consultant.kb


def build_runtime(
    settings: Settings,
    understanding: Understanding | None = None,
) -> Runtime:
    db = Database(settings.database_url)
    bus = make_bus(settings.redis_url)
    channels = build_channels(settings)
    billing = build_billing(settings.billing, settings.tariffs, db)
    understander, kb = understanding or (KeywordUnderstander(), lambda: None)
    hooks = build_hooks(settings.hooks, db, bus)
    if not settings.public_url:
        log.warning("public_url is not set: links in answers go out untracked")
    services = Services(
        settings=settings,
        billing=billing,
        understander=understander,
        contacts=ContactDirectory(db),
        db=db,
        kb=kb,
        placeholders=values_from_settings(settings),
        readings_checks=hooks.checks,
    )
    direct = frozenset(cid for cid, channel in channels.items() if channel.delivers_from_store)
    pipeline = Pipeline(db, bus, Bot(services), store_delivered=direct, accounts=billing)
    files = Store(
        Path(settings.attachments.dir)
        if settings.attachments.dir
        else default_root(settings.database_url),
        settings.attachments.max_bytes,
    )
    sender = OutboxSender(
        db,
        bus,
        channels,
        files=files,
        public_url=settings.public_url,
        link_valid=timedelta(hours=settings.attachments.link_hours),
    )
    retention = settings.stats.events_retention_days
    metrics = Metrics(bus)
    hooks.count_outcomes(lambda hook, outcome: metrics.hook_runs.labels(hook, outcome).inc())
    durable: list[Consumer] = [StatsConsumer(settings.company.tz, settings.company.working_hours)]
    # reminders (issue 13): what followed each reminder, for the campaigns' statistics.
    durable.append(ReminderStatsConsumer(settings.reminders.followup_days))
    webhooks = None
    if settings.webhooks:
        webhooks = WebhookSender(db, bus, settings.webhooks, metrics=metrics)
        durable.append(WebhookConsumer(settings.webhooks, webhooks.wake))
    durable.extend(hooks.consumers)
    consumers = EventConsumers(
        db,
        bus,
        durable,
        retention=timedelta(days=retention) if retention else None,
    )
    idle = settings.conversations.idle_close_hours

    def title(intent: str) -> str:
        current = kb()
        return current.title(intent) if current is not None else intent

    stats = Stats(
        db,
        settings.company.tz,
        {cid: channel.type for cid, channel in channels.items()},
        night_hours=settings.stats.night_hours,
        titles=title,
    )
    runtime = Runtime(
        hooks=hooks,
        files=files,
        fetcher=Fetcher(db, bus, files, channels),
        stats=stats,
        desk=Desk(
            db,
            bus,
            pipeline,
            survey=settings.operators.satisfaction_survey,
            idle_close=timedelta(hours=idle) if idle else None,
        ),
        consumers=consumers,
        crm=build_crm(settings.crm, db, billing),
        readings_delivery=build_delivery(billing, db, bus),
        live=DeskLive(db, bus),
        settings=settings,
        db=db,
        bus=bus,
        channels=channels,
        billing=billing,
        understander=understander,
        pipeline=pipeline,
        sweeper=StrandedSweeper(pipeline),
        sender=sender,
        metrics=metrics,
        webhooks=webhooks,
        reminders=(
            ReminderSender(db, bus, channels, billing, settings)
            if settings.reminders.enabled
            else None
        ),
    )
    hooks.attach(
        HookServices(
            db=db,
            bus=bus,
            pipeline=pipeline,
            billing=billing,
            crm=runtime.crm,
            contacts=services.contacts,
            company=settings.company,
        )
    )
    return runtime


def create_app(
    settings: Settings | None = None,
    *,
    extra: dict[str, Any] | None = None,
    understanding: Understanding | None = None,
) -> FastAPI:
    """The ASGI app; ``extra`` lands on the runtime (the demo passes its sample accounts);
    ``understanding`` reuses a loaded consultant (tests start many apps in one process)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = build_runtime(
            settings, understanding or await asyncio.to_thread(start_understanding)
        )
        runtime.extra.update(extra or {})
        watcher = getattr(runtime.understander, "start_watching", None)
        if watcher is not None:
            watcher()  # editors' changes to the knowledge base apply without a restart
        await upgrade(runtime.db.engine)
        await runtime.bus.start()
        for channel in runtime.channels.values():
            await channel.start()
        await runtime.sender.start()
        await runtime.fetcher.start()
        if runtime.readings_delivery is not None:
            await runtime.readings_delivery.start()
        await runtime.live.load()
        await runtime.desk.start()
        if runtime.webhooks is not None:
            await runtime.webhooks.start()  # before the consumer that queues for it
        await runtime.hooks.start()  # before the consumer that queues its runs
        await runtime.consumers.start()
        app.state.runtime = runtime
        recovered = await runtime.pipeline.recover()
        if recovered:
            log.info("resuming %d conversations with unanswered messages", recovered)
        await runtime.sweeper.start()
        if runtime.reminders is not None:
            await runtime.reminders.start()
        # nlu/retrain.py: every process swaps in the newest accepted retrained model.
        from abonent.nlu.retrain import ModelFollower

        follower = ModelFollower(runtime.db, runtime.understander, settings.nlu.poll_seconds)
        runtime.extra["nlu_follower"] = follower
        await follower.start()
        log.info(
            "Abonent %s ready on %s", __version__, "SQLite" if settings.is_sqlite else "PostgreSQL"
        )
        try:
            yield
        finally:
            await follower.stop()
            if runtime.reminders is not None:
                await runtime.reminders.stop()
            await runtime.sweeper.stop()
            await runtime.pipeline.drain_all()
            stop_watching = getattr(runtime.understander, "stop_watching", None) or getattr(
                runtime.understander, "stop", None
            )
            if stop_watching is not None:
                await asyncio.to_thread(stop_watching)
            await runtime.desk.stop()
            await runtime.consumers.stop()
            await runtime.hooks.stop()
            if runtime.webhooks is not None:
                await runtime.webhooks.stop()
            runtime.live.stop()
            await runtime.sender.stop()
            await runtime.fetcher.stop()
            if runtime.readings_delivery is not None:
                await runtime.readings_delivery.stop()
            for channel in runtime.channels.values():
                await channel.stop()
            await runtime.bus.stop()
            await runtime.crm.close()
            await runtime.billing.close()
            await runtime.db.dispose()

    from abonent.web import (
        admin_api,
        attachments_api,
        client_api,
        docs,
        errors,
        integrations_api,
        kb_editor_api,
        links,
        operator_api,
        pages,
        reminders_api,
        service,
        stats_api,
        templates_api,
        webhooks,
        workspace_api,
        workspace_pages,
    )

    app = FastAPI(
        title="Abonent",
        version=__version__,
        description="Chat centre and virtual consultant for utilities.",
        lifespan=lifespan,
        # Served from the package by web/docs.py: the defaults load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    client_api.install(app)
    app.include_router(client_api.router)
    app.include_router(attachments_api.client_router)
    app.include_router(attachments_api.workspace_router)
    app.include_router(attachments_api.public_router)
    app.include_router(operator_api.router)
    app.include_router(service.router)
    app.include_router(docs.router)
    app.include_router(links.router)
    app.include_router(admin_api.router)
    app.include_router(integrations_api.router)
    app.include_router(integrations_api.page_router)
    app.include_router(kb_editor_api.router)
    app.include_router(kb_editor_api.page_router)
    app.include_router(reminders_api.router)  # reminders (issue 13)
    app.include_router(reminders_api.stats_router)
    app.include_router(reminders_api.page_router)
    app.include_router(webhooks.router)
    app.include_router(workspace_api.router)
    app.include_router(templates_api.router)
    app.include_router(stats_api.token_router)
    app.include_router(stats_api.session_router)
    app.include_router(workspace_pages.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    return app

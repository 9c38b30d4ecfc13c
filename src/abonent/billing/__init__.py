"""The billing a deployment runs on, behind the ``Billing`` interface (``billing.base``).

``[billing] type = "local"``: our own tables, fed by ``abonent billing import``;
``type = "http"``: the utility's billing over the contract of docs/billing-http-api.md,
with readings it cannot take at once queued and delivered later (``billing.queue``).
Nothing outside this package reads the billing's tables.

The backends are imported when built: ``abonent.config`` imports parts of the CRM, which
imports ``billing.accounts``, so this package must not need the settings to be imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from abonent.billing.base import Billing
    from abonent.billing.queue import ReadingsDelivery
    from abonent.config import BillingSettings, TariffSettings
    from abonent.core.bus import LocalBus
    from abonent.db.session import Database

__all__ = ["build_billing", "build_delivery"]


def build_billing(settings: BillingSettings, tariffs: TariffSettings, db: Database) -> Billing:
    """The configured billing; our own tables when none is (``type = "local"``)."""
    if settings.type == "http":
        from abonent.billing.http import HttpBilling

        return HttpBilling(settings, db, tariffs)
    from abonent.billing.local import LocalBilling

    return LocalBilling(db, tariffs)


def build_delivery(billing: Billing, db: Database, bus: LocalBus) -> ReadingsDelivery | None:
    """The loop that passes queued readings on; only a billing elsewhere needs one."""
    from abonent.billing.http import HttpBilling
    from abonent.billing.queue import ReadingsDelivery

    if isinstance(billing, HttpBilling):
        return ReadingsDelivery(db, bus, billing, first_retry=billing.settings.queue_retry_seconds)
    return None

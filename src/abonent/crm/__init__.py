"""Who a customer is in the company's records: the ``Crm`` interface and its backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from abonent.crm.base import Crm, CrmError, CrmPerson, CrmSettings
from abonent.crm.http import HttpCrm
from abonent.crm.local import LocalCrm
from abonent.db.session import Database

if TYPE_CHECKING:
    from abonent.billing.base import Billing

__all__ = ["Crm", "CrmError", "CrmPerson", "CrmSettings", "HttpCrm", "LocalCrm", "build_crm"]


def build_crm(settings: CrmSettings, db: Database, billing: Billing | None = None) -> Crm:
    """The configured CRM; our own records when none is (``type = "local"``), whose
    accounts come from ``billing`` (the local tables when none is given)."""
    if settings.type == "http":
        return HttpCrm(settings.url, settings.token, settings.timeout)
    return LocalCrm(db, billing)

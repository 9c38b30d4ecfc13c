"""Who a customer is in the company's records: the ``Crm`` interface and its backends."""

from __future__ import annotations

from abonent.crm.base import Crm, CrmError, CrmPerson, CrmSettings
from abonent.crm.http import HttpCrm
from abonent.crm.local import LocalCrm
from abonent.db.session import Database

__all__ = ["Crm", "CrmError", "CrmPerson", "CrmSettings", "HttpCrm", "LocalCrm", "build_crm"]


def build_crm(settings: CrmSettings, db: Database) -> Crm:
    """The configured CRM; our own tables when none is (``type = "local"``)."""
    if settings.type == "http":
        return HttpCrm(settings.url, settings.token, settings.timeout)
    return LocalCrm(db)

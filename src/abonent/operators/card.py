"""The customer card beside a conversation: who writes, from where, and their accounts.

It pulls three sources that fail independently: our own tables (always), the billing
(balance and last readings) and the CRM (the person behind the messenger nickname). A slow
or broken CRM or billing only blanks its own part; the operator still gets the card.
Opening a card shows personal data, so every view is written to the audit log first:
even a view that fails half-way was an access.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from abonent.billing.accounts import normalise_account_number
from abonent.billing.base import ZONE_TITLES, AccountInfo, Billing, BillingError
from abonent.billing.readings import plain_decimal
from abonent.clock import utcnow
from abonent.crm.base import Crm, CrmError, CrmPerson
from abonent.db.models import (
    AuditRecord,
    ChannelIdentity,
    Contact,
    ContactAccount,
    ContactCardDetail,
    ConversationTag,
)
from abonent.db.session import Database
from abonent.operators.formats import balance_text, date_text, plan_title

log = logging.getLogger(__name__)

AUDIT_ACTION = "card.view"
# What the card says in place of CRM data; the workspace shows these as they are.
CRM_UNAVAILABLE = "CRM не ответила: данные из неё сейчас не показаны"
CRM_NOT_FOUND = "В CRM не найден"
# A CRM may tie a landlord to hundreds of accounts; the card is not the place for all.
MAX_CRM_ACCOUNTS = 10


class ContactNotFound(LookupError):
    """No contact with this id (the API answers 404)."""


async def audit(
    db: Database, user_id: int, action: str, contact_id: int, conversation_id: int | None
) -> None:
    """Write down that ``user_id`` was shown this contact's personal data."""
    async with db.transaction() as session:
        session.add(
            AuditRecord(
                user_id=user_id,
                action=action,
                contact_id=contact_id,
                conversation_id=conversation_id,
                at=utcnow(),
            )
        )


def mask_external_id(external_id: str) -> str:
    """Enough of a platform id to tell two identities apart, too little to message them."""
    keep = min(4, len(external_id) // 2)
    return "…" + external_id[-keep:] if keep else "…"


async def customer_card(
    db: Database,
    billing: Billing,
    crm: Crm,
    contact_id: int,
    viewer_user_id: int,
    conversation_id: int | None = None,
    *,
    channel_types: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The card as JSON-ready data; ``channel_types`` maps channel ids to platform types.

    Raises ContactNotFound (nothing is shown, nothing audited) for an unknown contact.
    """
    async with db.session() as session:
        contact = await session.get(Contact, contact_id)
        if contact is None:
            raise ContactNotFound(contact_id)
        identities = list(
            await session.scalars(
                select(ChannelIdentity)
                .where(ChannelIdentity.contact_id == contact_id)
                .order_by(ChannelIdentity.id)
            )
        )
        linked = list(
            await session.scalars(
                select(ContactAccount.account_number)
                .where(ContactAccount.contact_id == contact_id)
                .order_by(ContactAccount.last_used_at.desc(), ContactAccount.id.desc())
            )
        )
        # A phone a hook found (the CRM's): shown when the messenger vouched for none.
        detail = await session.get(ContactCardDetail, contact_id)
        tags = (
            list(
                await session.scalars(
                    select(ConversationTag.tag)
                    .where(ConversationTag.conversation_id == conversation_id)
                    .order_by(ConversationTag.created_at, ConversationTag.tag)
                )
            )
            if conversation_id is not None
            else []
        )
    phone = contact.phone or (detail.phone if detail is not None else None)
    await audit(db, viewer_user_id, AUDIT_ACTION, contact_id, conversation_id)

    (crm_part, person), linked_accounts = await asyncio.gather(
        _crm_part(crm, contact_id, phone, linked[0] if linked else None),
        _accounts(billing, linked, "contact"),
    )
    named = [n for n in (person.accounts if person else []) if n not in linked]
    crm_accounts = await _accounts(billing, named[:MAX_CRM_ACCOUNTS], "crm")
    accounts = linked_accounts + crm_accounts
    types = channel_types or {}
    name = contact.name or next((i.display_name for i in identities if i.display_name), None)
    return {
        "contact": {
            "id": contact.id,
            "name": name,
            "phone": phone,
            # platform: the messenger vouched for it; integration: a hook put it there.
            "phone_source": "platform" if contact.phone else ("integration" if phone else None),
            "created_at": contact.created_at.isoformat(),
        },
        # Labels the company's hooks put on this conversation.
        "tags": tags,
        "identities": [
            {
                "channel_id": i.channel_id,
                "channel_type": types.get(i.channel_id),
                "display_name": i.display_name,
                "external_id": mask_external_id(i.external_id),
            }
            for i in identities
        ],
        "accounts": accounts,
        "billing": {
            "status": "unavailable" if any(a["status"] == "unavailable" for a in accounts) else "ok"
        },
        "crm": crm_part,
    }


async def _crm_part(
    crm: Crm, contact_id: int, phone: str | None, account: str | None
) -> tuple[dict[str, Any], CrmPerson | None]:
    """The CRM's answer by the contact's phone, else by its most recent account."""
    not_found = {"status": "none", "person": None, "message": CRM_NOT_FOUND}
    unavailable = {"status": "unavailable", "person": None, "message": CRM_UNAVAILABLE}
    if not phone and not account:
        return not_found, None
    try:
        person = await crm.find(phone, account)
    except CrmError as exc:
        log.warning("crm unavailable for the card of contact %s: %s", contact_id, exc)
        return unavailable, None
    except Exception:
        # A company's CRM plug-in has a bug: the operator still needs the card.
        log.exception("crm failed for the card of contact %s", contact_id)
        return unavailable, None
    if person is None:
        return not_found, None
    shown = {
        "status": "ok",
        "person": {
            "name": person.name,
            "phones": list(person.phones),
            "email": person.email,
            "accounts": list(person.accounts),
            "segment": person.segment,
            "note": person.note,
        },
        "message": None,
    }
    return shown, person


async def _accounts(billing: Billing, numbers: list[str], source: str) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_account(billing, n, source) for n in numbers)))


async def _account(billing: Billing, number: str, source: str) -> dict[str, Any]:
    blank: dict[str, Any] = {
        "number": number,
        "source": source,
        "holder": None,
        "address": None,
        "plan": None,
        "plan_title": None,
        "balance": None,
        "balance_text": None,
        "readings": None,
    }
    try:
        info = await billing.get_account(normalise_account_number(number))
    except BillingError as exc:
        log.warning("billing unavailable for an account on a card: %s", exc)
        return {**blank, "status": "unavailable"}
    if info is None:
        return {**blank, "status": "not_found"}
    return {
        **blank,
        "status": "ok",
        "holder": info.holder,
        "address": info.address,
        "plan": info.plan,
        "plan_title": plan_title(info.plan),
        "balance": str(info.balance),
        "balance_text": balance_text(info.balance),
        "readings": _readings(info),
    }


def _readings(info: AccountInfo) -> dict[str, Any] | None:
    """Last accepted readings as {date, date_text, zones {t1…}, titles {t1: "день"…}};
    None if never."""
    if info.readings_date is None:
        return None
    keys = [f"t{i}" for i in range(1, len(info.zones) + 1)]
    return {
        "date": info.readings_date.isoformat(),
        "date_text": date_text(info.readings_date),
        "zones": {k: plain_decimal(v) for k, v in zip(keys, info.last_readings, strict=True)},
        "titles": {k: ZONE_TITLES[z] for k, z in zip(keys, info.zones, strict=True)},
    }

"""The learning loop over HTTP (for the coming admin UI): what the consultant did not
understand, grouped by similarity with the topics each group resembles."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from abonent.clock import utcnow
from abonent.db.models import Message
from abonent.web.deps import OperatorAccess, RuntimeDep
from abonent.web.errors import ApiError

router = APIRouter(prefix="/api/admin/v1", tags=["admin"], dependencies=[OperatorAccess])

MAX_TEXTS = 2000


@router.get("/nlu/review")
async def nlu_review(
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    below: Annotated[float, Query(gt=0, le=1)] = 0.6,
) -> dict[str, Any]:
    """Customer messages of the last ``days`` that fell back or were recognised with
    confidence under ``below``, grouped so an editor can add examples to the right topic."""
    engine = runtime.understander
    if not hasattr(engine, "proba"):
        raise ApiError(503, "no_model", "The consultant's model is not loaded.")
    since = utcnow() - timedelta(days=days)
    intent = Message.meta["intent"].as_string()
    confidence = Message.meta["confidence"].as_float()
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(Message.text)
            .where(
                Message.author == "customer",
                Message.created_at >= since,
                intent.is_not(None),
                or_(intent == "fallback", confidence < below),
            )
            .order_by(Message.id.desc())
            .limit(MAX_TEXTS)
        )
        texts = [t for t in rows if t]
    from abonent.nlu.review import group_messages

    groups = await asyncio.to_thread(group_messages, texts, engine)
    return {"messages": len(texts), "groups": [g.to_dict() for g in groups]}

"""The learning loop over HTTP (for the coming admin UI): what the consultant did not
understand, grouped by similarity with the topics each group resembles."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from abonent.analytics.misses import recent_misses
from abonent.nlu.review import group_messages
from abonent.web.deps import OperatorAccess, RuntimeDep
from abonent.web.errors import ApiError

router = APIRouter(prefix="/api/admin/v1", tags=["admin"], dependencies=[OperatorAccess])


@router.get("/nlu/review")
async def nlu_review(
    runtime: RuntimeDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    below: Annotated[float, Query(gt=0, le=1)] = 0.6,
) -> dict[str, Any]:
    """Customer messages of the last ``days`` that fell back or were recognised with
    confidence under ``below``, grouped so an editor can add examples to the right topic."""
    # The server's consultant holds the trained engine once it is ready.
    engine = getattr(runtime.understander, "engine", runtime.understander)
    if engine is None or not hasattr(engine, "proba"):
        raise ApiError(503, "no_model", "The consultant's model is not loaded (yet).")
    texts = await recent_misses(runtime.db, days, below)

    groups = await asyncio.to_thread(group_messages, texts, engine)
    return {"messages": len(texts), "groups": [g.to_dict() for g in groups]}

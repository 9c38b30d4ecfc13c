"""Service endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from abonent.web.deps import RuntimeDep

router = APIRouter(tags=["service"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    try:
        await runtime.db.ping()
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, 503)
    # "keywords" while the consultant's model is still training (first start), then "model".
    consultant = getattr(runtime.understander, "stage", "model")
    return JSONResponse({"status": "ready", "database": "ok", "consultant": consultant})


@router.get("/metrics")
async def metrics(runtime: RuntimeDep) -> Response:
    await runtime.metrics.refresh(runtime.db)
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4")

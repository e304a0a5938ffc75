"""/admin/*: what a test or an operator of the sandbox sets and reads: the faults, the counters, the call outcomes,
and a reset of all of it."""

from __future__ import annotations

import json

import structlog
from fastapi import APIRouter, Request
from pydantic import ValidationError

from sandbox.gateway.calls import CallScript
from sandbox.gateway.common import ApiError, first_error, parse
from sandbox.gateway.state import FaultSettings, Gateway

log = structlog.get_logger("sandbox.gateway")


def admin_router(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.get("/admin/faults")
    async def get_faults(request: Request) -> dict:
        gw.check_key(request)
        return gw.faults_view()

    @router.post("/admin/faults")
    async def post_faults(request: Request) -> dict:
        gw.check_key(request)
        gw.set_faults(parse(FaultSettings, await request.body()))
        log.info("faults set", **gw.faults_view())
        return gw.faults_view()

    @router.delete("/admin/faults")
    async def delete_faults(request: Request) -> dict:
        gw.check_key(request)
        gw.set_faults(FaultSettings())
        return gw.faults_view()

    @router.get("/admin/stats")
    async def stats(request: Request) -> dict:
        gw.check_key(request)
        return gw.stats.as_dict()

    def _scripts_view() -> dict:
        return {loan: [s.model_dump(exclude_none=True) for s in steps] for loan, steps in gw.call_scripts.items()}

    @router.post("/admin/call-outcomes")
    async def post_call_outcomes(request: Request) -> dict:
        """{"<loan_id>": {outcome...} | [{outcome...}, ...] (played in order, the last one repeats) | null}"""
        gw.check_key(request)
        parsed = _call_scripts(await request.body())
        for loan_id, steps in parsed.items():
            if steps is None:
                gw.call_scripts.pop(loan_id, None)
            else:
                gw.call_scripts[loan_id] = steps
        return _scripts_view()

    @router.get("/admin/call-outcomes")
    async def get_call_outcomes(request: Request) -> dict:
        gw.check_key(request)
        return _scripts_view()

    @router.delete("/admin/call-outcomes")
    async def delete_call_outcomes(request: Request) -> dict:
        gw.check_key(request)
        gw.call_scripts.clear()
        return {}

    @router.post("/admin/reset")
    async def reset(request: Request) -> dict:
        """Clears the outbox and the stats, and also the faults and the call scripts."""
        gw.check_key(request)
        gw.reset()
        log.info("gateway reset")
        return {"status": "reset"}

    return router


def _call_scripts(raw: bytes) -> dict[str, list[CallScript] | None]:
    """The body of POST /admin/call-outcomes, every entry validated before any is applied."""
    try:
        data = json.loads(raw) if raw else None
    except ValueError as exc:
        raise ApiError(422, "body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "body", "must be a JSON object keyed by loan id")
    parsed: dict[str, list[CallScript] | None] = {}
    for loan_id, spec in data.items():
        if spec is None:
            parsed[loan_id] = None
            continue
        steps = spec if isinstance(spec, list) else [spec]
        if not steps:
            raise ApiError(422, loan_id, "an empty list; give at least one outcome or null to clear")
        out = []
        for i, step in enumerate(steps):
            try:
                out.append(CallScript.model_validate(step))
            except ValidationError as exc:
                f, reason = first_error(exc.errors())
                prefix = f"{loan_id}.{i}" if isinstance(spec, list) else loan_id
                raise ApiError(422, prefix if f == "body" else f"{prefix}.{f}", reason) from None
        parsed[loan_id] = out
    return parsed

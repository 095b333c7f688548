"""One HTTP status per domain error class; the body is the error's own dict (code, message, field)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from datong.core import errors

STATUS: dict[type[errors.DatongError], int] = {
    errors.ValidationFailed: 422,
    errors.NotFound: 404,
    errors.Forbidden: 403,
    errors.Unauthenticated: 401,
    errors.Conflict: 409,
    errors.ConfigurationError: 500,
}


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.DatongError)
    async def _domain(_: Request, exc: errors.DatongError) -> JSONResponse:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(exc.as_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_problem(e) for e in exc.errors()]
        first = problems[0] if problems else {"field": None, "reason": "invalid request"}
        return JSONResponse(
            {
                "code": "invalid",
                "message": first["reason"],
                "field": first["field"],
                "detail": {"errors": problems},
            },
            status_code=422,
        )


# Where FastAPI found a value; the field is named without it, as the services name their fields.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _problem(error: Any) -> dict[str, Any]:
    """``{"field", "reason", "in"}`` for one validation error. A body that is missing or not JSON at all
    is field ``body`` (FastAPI's location is then empty, or a character position, not a field)."""
    loc = [str(part) for part in error.get("loc", ())]
    where = loc[0] if loc and loc[0] in _LOCATIONS else None
    if error.get("type") == "json_invalid":
        why = (error.get("ctx") or {}).get("error")
        return {"field": "body", "reason": f"the body is not valid JSON: {why or error['msg']}", "in": "body"}
    name = ".".join(loc[1:] if where else loc)
    return {"field": name or where, "reason": error["msg"], "in": where}

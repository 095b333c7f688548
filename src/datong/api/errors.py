"""One HTTP status per domain error class; the body is the error's own dict (code, message, field)."""

from __future__ import annotations

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
        problems = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]}
            for e in exc.errors()
        ]
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

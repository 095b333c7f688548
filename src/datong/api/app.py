"""The FastAPI application. Routers are thin: they check the caller's right, call a service, render."""

from __future__ import annotations

from fastapi import FastAPI

from datong import __version__
from datong.api import errors
from datong.api.routers import (
    audit,
    auth,
    coupon_codes,
    coupons,
    draws,
    guides,
    imports,
    members,
    org,
    points,
    spend_claims,
    wechat,
)
from datong.core.context import Runtime, load_runtime
from datong.core.errors import ConfigurationError
from datong.core.migrate import is_current


def create_app(runtime: Runtime | None = None, *, check_schema: bool = True) -> FastAPI:
    rt = runtime or load_runtime()
    if check_schema and not is_current(rt.db.engine):
        raise ConfigurationError("the database schema is not current: run `datong db upgrade`")
    app = FastAPI(
        title="datong",
        version=__version__,
        description="打通: one member per person across every channel a brand sells through.",
    )
    app.state.runtime = rt
    errors.install(app)
    for router in (
        auth.router,
        members.router,
        imports.router,
        org.router,
        audit.router,
        points.router,
        coupons.router,
        guides.router,
        draws.router,
        coupon_codes.router,
        spend_claims.router,
        wechat.router,
    ):
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app

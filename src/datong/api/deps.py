"""Request dependencies: the runtime, a transaction per request, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from datong.core.context import Runtime
from datong.core.errors import Unauthenticated
from datong.org.queries import store_ids_for
from datong.tenancy import rules
from datong.tenancy.models import ApiKey, User
from datong.tenancy.service import authenticate_token


def runtime(request: Request) -> Runtime:
    value: Runtime = request.app.state.runtime
    return value


def session(rt: Annotated[Runtime, Depends(runtime)]) -> Iterator[Session]:
    """The request owns the transaction: committed when the handler returns, rolled back if it raises.

    Used with ``scope="function"`` (see ``SessionDep``): the commit happens before the response is sent.
    With FastAPI's default request scope it would happen after, and a crash or a failed commit in
    between would leave the caller holding a 200 for a write that never happened."""
    with rt.db.unit_of_work() as s:
        yield s


def principal(
    s: Annotated[Session, Depends(session, scope="function")],
    authorization: Annotated[str | None, Header()] = None,
) -> rules.Principal:
    return _principal_of(s, authorization)


def principal_outside_transaction(
    rt: Annotated[Runtime, Depends(runtime)],
    authorization: Annotated[str | None, Header()] = None,
) -> rules.Principal:
    """For a route that hands work to another thread and waits for it: the caller is authenticated in a
    short read-only session, so the request holds no transaction. (On SQLite the request's transaction
    holds the write lock, which the worker thread would wait for until the route gave up waiting.)"""
    with rt.db.reading() as s:
        return _principal_of(s, authorization)


def _principal_of(s: Session, authorization: str | None) -> rules.Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthenticated("send Authorization: Bearer <token or API key>")
    kind, who = authenticate_token(s, authorization[7:].strip())
    if isinstance(who, User):
        return rules.Principal(
            tenant_id=who.tenant_id,
            kind="user",
            id=who.id,
            role=who.role,
            permissions=rules.ROLE_PERMISSIONS.get(who.role, frozenset()),
            agent_id=who.agent_id,
            store_id=who.store_id,
            guide_id=who.guide_id,
            store_ids=store_ids_for(s, tenant_id=who.tenant_id, agent_id=who.agent_id, store_id=who.store_id),
        )
    assert isinstance(who, ApiKey)
    return rules.Principal(
        tenant_id=who.tenant_id,
        kind=kind,
        id=who.id,
        permissions=frozenset(who.scopes),
        store_id=who.store_id,
        store_ids=frozenset({who.store_id}) if who.store_id else None,
    )


SessionDep = Annotated[Session, Depends(session, scope="function")]
PrincipalDep = Annotated[rules.Principal, Depends(principal)]
PrincipalOutsideTransactionDep = Annotated[rules.Principal, Depends(principal_outside_transaction)]
RuntimeDep = Annotated[Runtime, Depends(runtime)]

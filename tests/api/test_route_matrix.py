"""Who may call what: every route of the app × every kind of caller (× the object it names) → one status.

The table below is the specification, written by hand from the roles in ARCHITECTURE.md and
``tenancy/rules.py``, not derived from the code under test:

* no token or a bad token → 401 (with ``WWW-Authenticate: Bearer``);
* a caller without the right the endpoint needs → 403, whatever the object;
* a caller with the right, naming an object it may not see → 404, exactly as for an object that does
  not exist: another brand's object, a member outside an agent's stores, outside a store manager's
  store, not a guide's own, outside a store key's store; and for points, a store (a sale's, a
  redemption's, a hold's) where a caller bound to stores may not act: an agent manager acts at its
  agent's stores, a store manager and a store key at their own store; for coupons, a coupon (named by
  its code) or a coupon redemption of a member the caller may not see, and, as for points, a store (a
  validation's, a redemption's) where a caller bound to stores may not act;
* otherwise the endpoint's success status, with the exact objects in the body.

Every failing cell also checks that nothing was written (row counts of every table a request could
touch, the newest member change, orders by status, the points left in lots and the member accounts'
running totals, the coupons by status, their redemptions and budgets, the upload folder).
Each domain's rows are in ``tests/api/matrix_<domain>.py`` (a module-level ``ENDPOINTS`` list), found
here by name. ``test_every_route_is_in_the_table`` fails when the app gains a route this table does not cover.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import pytest
from fastapi.routing import iter_route_contexts

import tests.api
from tests.api.conftest import CALLERS, ROLES, World
from tests.api.matrix import Endpoint


def _endpoint_list() -> list[Endpoint]:
    found: list[Endpoint] = []
    for info in sorted(pkgutil.iter_modules(tests.api.__path__), key=lambda m: m.name):
        if info.name.startswith("matrix_"):
            found.extend(importlib.import_module(f"tests.api.{info.name}").ENDPOINTS)
    return found


ENDPOINT_LIST = _endpoint_list()
ENDPOINTS = {(e.method, e.path): e for e in ENDPOINT_LIST}
assert len(ENDPOINTS) == len(ENDPOINT_LIST), "an endpoint is listed twice"

LOGIN_CALLERS = {
    # Whose credentials: each brand-1 user, and brand 2's admin; anyone may try an unknown user.
    "own_password": frozenset({*ROLES, "other_brand_admin"}),
    "wrong_password": frozenset({*ROLES, "other_brand_admin"}),
    "other_brand_code": frozenset({*ROLES, "other_brand_admin"}),
    "unknown_user": frozenset({"anonymous"}),
    "missing_password": frozenset({"anonymous"}),
}
LOGIN_EXPECTED = {
    "own_password": 200,
    "wrong_password": 401,
    "other_brand_code": 401,
    "unknown_user": 401,
    "missing_password": 422,
}


@dataclass(frozen=True)
class Cell:
    endpoint: Endpoint
    caller: str
    target: str
    expected: int

    @property
    def id(self) -> str:
        where = "" if self.target == "-" else f"@{self.target}"
        return f"{self.endpoint.method} {self.endpoint.path} {self.caller}{where}"


def _cells() -> list[Cell]:
    cells = []
    for endpoint in ENDPOINT_LIST:
        for caller in CALLERS:
            for target in endpoint.targets:
                if endpoint.path == "/api/v1/auth/login":
                    if caller in LOGIN_CALLERS[target]:
                        cells.append(Cell(endpoint, caller, target, LOGIN_EXPECTED[target]))
                    continue
                cells.append(Cell(endpoint, caller, target, endpoint.expected(caller, target)))
    return cells


CELLS = _cells()
ERROR_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 422: "invalid"}


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_access(world: World, cell: Cell) -> None:
    ok = cell.expected < 400
    before = None if ok else world.counts()
    response = cell.endpoint.call(world, cell.caller, cell.target, ok)
    assert response.status_code == cell.expected, response.text
    if ok:
        return
    assert response.json()["code"] == ERROR_CODES[cell.expected]
    if cell.expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert world.counts() == before, "a refused request changed something"


def test_every_route_is_in_the_table(world: World) -> None:
    """A route added to the app without a row here fails this test (and a row for a removed route too)."""
    served: set[tuple[str, str]] = set()
    for route in iter_route_contexts(world.app.routes):
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD wherever it answers GET
        served.update((method, str(route.path)) for method in methods)
    assert served == set(ENDPOINTS)
    documented = {
        (method.upper(), path)
        for path, operations in world.client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    assert documented <= set(ENDPOINTS)
    for endpoint in ENDPOINT_LIST:
        covered = {c.caller for c in CELLS if c.endpoint is endpoint}
        assert covered == set(CALLERS) or endpoint.path == "/api/v1/auth/login", endpoint.path

"""Small helpers for API tests: a write with an Idempotency-Key, a successful answer, a refusal."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import World


def write(
    w: World,
    caller: str,
    path: str,
    body: dict[str, Any] | None,
    key: str | None = None,
    *,
    send_key: bool = True,
) -> httpx.Response:
    """A POST with an Idempotency-Key: ``key``, or a new one for every call."""
    headers = w.auth(caller)
    if send_key:
        headers["Idempotency-Key"] = key if key is not None else f"key-{w.fresh_card()}"
    response: httpx.Response = w.client.post(path, json=body, headers=headers)
    return response


def answer(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response) -> tuple[int, str | None, str | None]:
    """What a refusal says: status, code, field."""
    body = response.json()
    return response.status_code, body.get("code"), body.get("field")

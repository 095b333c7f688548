"""The WeChat official account's server callback: ``/wechat/callback/{appid}``.

WeChat authenticates itself by signature, not by a datong token. A message is checked, kept in the
inbox and answered ``success`` at once (WeChat gives up after 5 seconds and retries); the work it
causes runs after the answer (``jobs/wechat.py``), and ``datong wechat process`` picks up whatever a
crash left. A retry of a message already kept changes nothing.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from datong.api.deps import runtime
from datong.channels.wechat import callback, service
from datong.core.context import Runtime
from datong.jobs.wechat import process_inbox

router = APIRouter(prefix="/wechat", tags=["wechat"])
# Plain mode signs only the URL: a captured URL may not be replayed with another body for long.
MAX_CLOCK_SKEW_SECONDS = 300


@router.get("/callback/{appid}", response_class=PlainTextResponse)
def verify(appid: str, request: Request) -> str:
    """WeChat's check of the URL: ``echostr`` back if the signature is right."""
    rt = runtime(request)
    with rt.db.reading() as s:
        secrets = service.account_secrets(rt.keyring, service.get_account(s, appid=appid))
    return callback.verify_url(dict(request.query_params), secrets.token)


@router.post("/callback/{appid}")
async def receive(appid: str, request: Request, background: BackgroundTasks) -> Response:
    """A message or event: kept, answered ``success``, handled after the answer."""
    rt = runtime(request)
    body = bytearray()
    async for chunk in request.stream():  # stop at the limit, whatever Content-Length says (or not)
        body += chunk
        if len(body) > callback.MAX_BODY_BYTES:
            raise callback.BadMessage("the body is larger than any WeChat message", field="body")
    inbox_id = await run_in_threadpool(_keep, rt, appid, dict(request.query_params), bytes(body))
    if inbox_id is not None:
        background.add_task(process_inbox, rt.db, rt.keyring, [inbox_id])
    return Response(content=callback.SUCCESS, media_type="text/plain")


def _keep(rt: Runtime, appid: str, params: dict[str, str], body: bytes) -> str | None:
    """The inbox id of a new message, or None for a retry of one kept already."""
    with rt.db.unit_of_work() as s:
        account = service.get_account(s, appid=appid)
        secrets = service.account_secrets(rt.keyring, account)
        timestamp = params.get("timestamp", "")
        if timestamp.isdigit() and abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            raise callback.BadSignature("the request's timestamp is too far from now", field="timestamp")
        if secrets.aes_keys and not callback.is_safe_mode(params):
            # Plain mode signs only the URL; an account with an EncodingAESKey takes signed bodies only.
            raise callback.BadSignature(
                "this account takes safe-mode (encrypted) messages only", field="encrypt_type"
            )
        message = callback.unwrap(params, body, token=secrets.token, cipher=secrets.cipher(appid))
        row, created = service.receive(
            s, account=account, message=message, request=service.request_key(params)
        )
        return row.id if created else None

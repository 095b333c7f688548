"""The outbox's sender for WeChat template messages: ``wechat.template`` rows whose payload is
``{"touser", "template_id", "data", "url"?}``. The row's key is sent as ``client_msg_id`` (WeChat drops a
repeat within 10 minutes), and the answer's ``msgid`` becomes the row's ``external_id``, which the
``TEMPLATESENDJOBFINISH`` callback later finds to record whether the member got it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from datong.channels.wechat.client import WeChatClient, WeChatError
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import Outcome

TEMPLATE = "wechat.template"


class TemplateSender:
    def __init__(self, client: WeChatClient) -> None:
        self.client = client

    def __call__(self, session: Session, message: OutboxMessage) -> Outcome:
        payload = message.payload
        try:
            msgid = self.client.send_template(
                payload["touser"],
                payload["template_id"],
                payload["data"],
                url=payload.get("url"),
                client_msg_id=message.key[:64],
            )
        except WeChatError as exc:
            return Outcome("retry" if exc.retryable else "failed", error=str(exc))
        return Outcome("sent", external_id=str(msgid))

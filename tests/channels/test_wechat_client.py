"""The WeChat API client against the local fake (tests/fakes/wechat.py): tokens, QR tickets, templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from datong.channels.wechat.client import (
    CachedToken,
    MemoryTokenCache,
    MiniProgramPage,
    QrTicket,
    WeChatClient,
    WeChatCredentialError,
    WeChatError,
    WeChatInvalidActionInfo,
    WeChatInvalidActionName,
    WeChatQrQuotaExceeded,
    WeChatTokenError,
    WeChatUnavailable,
)
from datong.core.errors import ValidationFailed
from tests.fakes.clock import FakeClock
from tests.fakes.wechat import FakeWeChat

STABLE = "/cgi-bin/stable_token"
CREATE = "/cgi-bin/qrcode/create"
SEND = "/cgi-bin/message/template/send"
SHOW = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeWeChat:
    return FakeWeChat(clock=clock)


@pytest.fixture
def client(fake: FakeWeChat, clock: FakeClock) -> Iterator[WeChatClient]:
    with WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=clock) as client:
        yield client


def paths(fake: FakeWeChat) -> list[str]:
    return [call.path for call in fake.calls]


# --- the access token ----------------------------------------------------------------------------


def test_token_is_fetched_once_from_stable_token_with_the_secret_in_the_body(
    client: WeChatClient, fake: FakeWeChat, clock: FakeClock
) -> None:
    assert client.access_token() == "ACCESS_TOKEN_0001"
    assert client.access_token() == "ACCESS_TOKEN_0001"
    assert paths(fake) == [STABLE]
    call = fake.calls[0]
    assert call.method == "POST"
    assert call.params == {}
    assert call.body == {"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}


def test_token_is_refreshed_five_minutes_before_it_expires(
    client: WeChatClient, fake: FakeWeChat, clock: FakeClock
) -> None:
    cache = MemoryTokenCache()
    shared = WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=clock, token_cache=cache)
    assert shared.access_token() == "ACCESS_TOKEN_0001"
    assert cache.get(fake.appid) == CachedToken("ACCESS_TOKEN_0001", clock() + timedelta(seconds=7200))
    clock.advance(seconds=7200 - 300 - 1)
    assert shared.access_token() == "ACCESS_TOKEN_0001"
    assert fake.count(STABLE) == 1
    clock.advance(seconds=1)
    assert shared.access_token() == "ACCESS_TOKEN_0002"
    assert fake.count(STABLE) == 2
    assert cache.get(fake.appid) == CachedToken("ACCESS_TOKEN_0002", clock() + timedelta(seconds=7200))


def test_a_token_from_the_cache_is_used_without_fetching(fake: FakeWeChat, clock: FakeClock) -> None:
    cache = MemoryTokenCache()
    cache.set(fake.appid, "FROM_ANOTHER_PROCESS", expires_at=clock() + timedelta(hours=1))
    client = WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=clock, token_cache=cache)
    assert client.access_token() == "FROM_ANOTHER_PROCESS"
    assert fake.calls == []


THREADS = 8
# A safety net so that a lost thread fails the test instead of hanging the run; nothing is measured.
WAIT_LIMIT_S = 10


class EveryoneReadsFirstCache:
    """A ``TokenCache`` whose first ``get()`` in each thread waits until all ``THREADS`` threads have
    made theirs: every thread has seen the empty cache before any of them can fetch, so only the
    client's refresh lock (and its second look under it) keeps the fetches to one."""

    def __init__(self) -> None:
        self.inner = MemoryTokenCache()  # read it directly to look without joining the barrier
        self._start = threading.Barrier(THREADS)
        self._guard = threading.Lock()
        self._seen: set[int] = set()
        self.first_reads: list[CachedToken | None] = []

    def get(self, key: str) -> CachedToken | None:
        value = self.inner.get(key)
        with self._guard:
            first = threading.get_ident() not in self._seen
            self._seen.add(threading.get_ident())
            if first:
                self.first_reads.append(value)
        if first:
            self._start.wait(timeout=WAIT_LIMIT_S)
        return value

    def set(self, key: str, value: str, *, expires_at: datetime) -> None:
        self.inner.set(key, value, expires_at=expires_at)


def test_concurrent_threads_fetch_the_token_once(fake: FakeWeChat, clock: FakeClock) -> None:
    cache = EveryoneReadsFirstCache()
    client = WeChatClient(fake.appid, fake.secret, transport=fake.transport, clock=clock, token_cache=cache)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            tokens.append(client.access_token())
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    with client:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WAIT_LIMIT_S)
    assert [thread.is_alive() for thread in threads] == [False] * THREADS
    assert errors == []
    assert cache.first_reads == [None] * THREADS  # every thread found the cache empty
    assert tokens == ["ACCESS_TOKEN_0001"] * THREADS
    assert fake.count(STABLE) == 1
    assert cache.inner.get(fake.appid) == CachedToken("ACCESS_TOKEN_0001", clock() + timedelta(seconds=7200))


def test_an_expired_token_is_refreshed_once_and_the_call_retried_once(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    client.access_token()
    fake.expire_token()
    ticket = client.create_qr_ticket("guide_0042", permanent=False, expire_seconds=3600)
    assert ticket.url == "http://weixin.qq.com/q/fake0001"
    assert paths(fake) == [STABLE, CREATE, STABLE, CREATE]
    assert [call.params.get("access_token") for call in fake.calls] == [
        None,
        "ACCESS_TOKEN_0001",
        None,
        "ACCESS_TOKEN_0002",
    ]
    assert len(fake.codes) == 1


def test_a_revoked_token_40001_is_refreshed_and_the_call_retried(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    client.access_token()
    fake.revoke_token()
    assert client.send_template("openid-1", "TPL", {"first": "你好"}) == 200228332
    assert paths(fake) == [STABLE, SEND, STABLE, SEND]
    assert client.access_token() == "ACCESS_TOKEN_0002"


def test_a_token_refused_again_after_the_refresh_is_an_error_without_a_second_retry(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    fake.answer_next(40001, "invalid credential, access_token is invalid or not latest")
    fake.answer_next(42001, "access_token expired")
    with pytest.raises(WeChatTokenError) as caught:
        client.create_qr_ticket(7, permanent=False)
    assert caught.value.errcode == 42001
    assert caught.value.retryable is False
    assert paths(fake) == [STABLE, CREATE, STABLE, CREATE]
    assert fake.codes == []


def test_a_refused_secret_is_a_credential_error_that_never_shows_the_secret(
    fake: FakeWeChat, clock: FakeClock
) -> None:
    client = WeChatClient(fake.appid, "WRONG-SECRET-abcdef", transport=fake.transport, clock=clock)
    with pytest.raises(WeChatCredentialError) as caught:
        client.access_token()
    assert caught.value.errcode == 40125
    assert caught.value.errmsg == "invalid appsecret rid: 6630a1b2-0f1e2d3c-4b5a6978"
    assert "WRONG-SECRET" not in str(caught.value)
    assert "WRONG-SECRET" not in repr(client)
    assert caught.value.as_dict()["detail"] == {"errcode": 40125}


# --- QR tickets ----------------------------------------------------------------------------------


def test_temporary_string_scene(client: WeChatClient, fake: FakeWeChat) -> None:
    ticket = client.create_qr_ticket("guide_0042", permanent=False, expire_seconds=2_592_000)
    assert fake.calls[-1].body == {
        "action_name": "QR_STR_SCENE",
        "action_info": {"scene": {"scene_str": "guide_0042"}},
        "expire_seconds": 2_592_000,
    }
    code = fake.codes[0]
    assert ticket == QrTicket(
        scene="guide_0042",
        permanent=False,
        ticket=code.ticket,
        url="http://weixin.qq.com/q/fake0001",
        expire_seconds=2_592_000,
        image_url=SHOW + "%2B%2F%2B%2FaHR0cDovL3dlaXhpbi5xcS5jb20vcS9mYWtlMDAwMQ%3D%3D",
    )
    assert code.ticket == "+/+/aHR0cDovL3dlaXhpbi5xcS5jb20vcS9mYWtlMDAwMQ=="


def test_temporary_id_scene_without_expiry_takes_wechats_default(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    ticket = client.create_qr_ticket(2**31 - 1, permanent=False)
    assert fake.calls[-1].body == {
        "action_name": "QR_SCENE",
        "action_info": {"scene": {"scene_id": 2**31 - 1}},
    }
    assert ticket.expire_seconds == 60


def test_permanent_codes_have_no_expiry_and_count_against_the_quota(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    first = client.create_qr_ticket("store_0007", permanent=True)
    assert fake.calls[-1].body == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "store_0007"}},
    }
    assert first.expire_seconds is None
    assert first.permanent is True
    again = client.create_qr_ticket("store_0007", permanent=True)
    assert again == first
    by_id = client.create_qr_ticket(100_000, permanent=True)
    assert fake.calls[-1].body == {
        "action_name": "QR_LIMIT_SCENE",
        "action_info": {"scene": {"scene_id": 100_000}},
    }
    assert by_id.url == "http://weixin.qq.com/q/fake0002"
    assert fake.permanent_used == 2


def test_the_permanent_quota_is_enforced_with_45029(client: WeChatClient, fake: FakeWeChat) -> None:
    fake.permanent_used = 100_000
    with pytest.raises(WeChatQrQuotaExceeded) as caught:
        client.create_qr_ticket("event_2026", permanent=True)
    assert caught.value.errcode == 45029
    assert fake.codes == []
    assert fake.permanent_used == 100_000
    assert client.create_qr_ticket("event_2026", permanent=False, expire_seconds=600).expire_seconds == 600


@pytest.mark.parametrize(
    ("scene", "permanent", "expire_seconds", "field", "reason"),
    [
        ("", False, None, "scene", "scene_str must be 1 to 64 characters, got 0"),
        ("g" * 65, False, None, "scene", "scene_str must be 1 to 64 characters, got 65"),
        ("导" * 65, True, None, "scene", "scene_str must be 1 to 64 characters, got 65"),
        (0, False, None, "scene", "a temporary scene_id must be 1 to 2147483647, got 0"),
        (-5, False, None, "scene", "a temporary scene_id must be 1 to 2147483647, got -5"),
        (2**31, False, None, "scene", "a temporary scene_id must be 1 to 2147483647, got 2147483648"),
        (0, True, None, "scene", "a permanent scene_id must be 1 to 100000, got 0"),
        (100_001, True, None, "scene", "a permanent scene_id must be 1 to 100000, got 100001"),
        (True, False, None, "scene", "scene must be a string (scene_str) or an integer (scene_id)"),
        (1.5, False, None, "scene", "scene must be a string (scene_str) or an integer (scene_id)"),
        ("a", False, 0, "expire_seconds", "a temporary QR code lasts 1 to 2592000 seconds (30 days), got 0"),
        (
            "a",
            False,
            2_592_001,
            "expire_seconds",
            "a temporary QR code lasts 1 to 2592000 seconds (30 days), got 2592001",
        ),
        ("a", True, 3600, "expire_seconds", "a permanent QR code does not expire: leave it None"),
    ],
)
def test_bad_qr_requests_are_refused_before_any_call(
    client: WeChatClient,
    fake: FakeWeChat,
    scene: object,
    permanent: bool,
    expire_seconds: int | None,
    field: str,
    reason: str,
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.create_qr_ticket(scene, permanent=permanent, expire_seconds=expire_seconds)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert caught.value.message == reason
    assert fake.calls == []


def test_40052_and_40053_map_to_their_errors(client: WeChatClient, fake: FakeWeChat) -> None:
    fake.answer_next(40052, "invalid action name")
    with pytest.raises(WeChatInvalidActionName) as name:
        client.create_qr_ticket("a", permanent=False)
    assert (name.value.errcode, name.value.retryable) == (40052, False)
    fake.answer_next(40053, "invalid action info")
    with pytest.raises(WeChatInvalidActionInfo) as info:
        client.create_qr_ticket("a", permanent=False)
    assert info.value.errcode == 40053
    assert str(info.value) == "WeChat error 40053: invalid action info rid: 6630a1b2-0f1e2d3c-4b5a6978"
    assert fake.codes == []


def test_the_fake_validates_qrcode_create_as_wechat_documents(fake: FakeWeChat) -> None:
    with httpx.Client(transport=fake.transport, base_url="https://api.weixin.qq.com") as http:
        token = http.post(
            STABLE, json={"grant_type": "client_credential", "appid": fake.appid, "secret": fake.secret}
        ).json()["access_token"]

        def create(body: object) -> object:
            return http.post(CREATE, params={"access_token": token}, json=body).json()["errcode"]

        assert create({"action_name": "QR_BOGUS", "action_info": {"scene": {"scene_id": 1}}}) == 40052
        assert (
            create({"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}})
            == 40053
        )
        assert (
            create({"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100_001}}})
            == 40053
        )
        assert create({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 0}}}) == 40053
        assert create({"action_name": "QR_SCENE"}) == 40053
    assert fake.codes == []


# --- template messages and user info ---------------------------------------------------------------


def test_template_message_body_and_client_msg_id_dedupe(
    client: WeChatClient, fake: FakeWeChat, clock: FakeClock
) -> None:
    page = MiniProgramPage(appid="wxmini0000000001", pagepath="pages/coupon/index?id=7")
    words = {"first": "您有一张新券", "keyword1": "满100减20"}

    def send() -> int:
        return client.send_template(
            "o6_bmjrPTlm6",
            "TPL_COUPON",
            words,
            url="https://m.example.cn/c/7",
            miniprogram=page,
            client_msg_id="coupon-7-issued",
        )

    assert send() == 200228332
    body = {
        "touser": "o6_bmjrPTlm6",
        "template_id": "TPL_COUPON",
        "data": {"first": {"value": "您有一张新券"}, "keyword1": {"value": "满100减20"}},
        "url": "https://m.example.cn/c/7",
        "miniprogram": {"appid": "wxmini0000000001", "pagepath": "pages/coupon/index?id=7"},
        "client_msg_id": "coupon-7-issued",
    }
    assert fake.calls[-1].body == body
    # Chinese goes as UTF-8, not as \u escapes.
    assert "您有一张新券".encode() in fake.calls[-1].content
    clock.advance(minutes=9)
    assert send() == 200228332
    assert fake.messages == [{**body, "msgid": 200228332}]
    clock.advance(minutes=2)
    assert send() == 200228333
    assert len(fake.messages) == 2


def test_a_template_to_someone_who_unfollowed_is_a_plain_wechat_error(
    client: WeChatClient, fake: FakeWeChat
) -> None:
    fake.unsubscribed.add("o-gone")
    with pytest.raises(WeChatError) as caught:
        client.send_template("o-gone", "TPL", {"first": "hi"})
    assert type(caught.value) is WeChatError
    assert (caught.value.errcode, caught.value.retryable) == (43004, False)
    assert fake.messages == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", "TPL", {"a": "b"}), "touser"),
        (("o1", " ", {"a": "b"}), "template_id"),
        (("o1", "TPL", {}), "data"),
        (("o1", "TPL", {"a": 5}), "data.a"),
        (("o1", "TPL", {"": "b"}), "data"),
    ],
)
def test_bad_template_requests_are_refused_before_any_call(
    client: WeChatClient, fake: FakeWeChat, args: tuple[object, ...], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.send_template(*args)  # type: ignore[arg-type]
    assert caught.value.field == field
    with pytest.raises(ValidationFailed) as mini:
        client.send_template("o1", "TPL", {"a": "b"}, miniprogram=MiniProgramPage(appid="wx1", pagepath=""))
    assert mini.value.field == "miniprogram.pagepath"
    assert fake.calls == []


def test_user_info(client: WeChatClient, fake: FakeWeChat) -> None:
    record = {
        "subscribe": 1,
        "openid": "o6_bmjrPTlm6",
        "language": "zh_CN",
        "subscribe_time": 1714036504,
        "unionid": "o6_bmasdasdsad6",
        "remark": "",
        "groupid": 0,
        "tagid_list": [128, 2],
        "subscribe_scene": "ADD_SCENE_QR_CODE",
        "qr_scene": 98765,
        "qr_scene_str": "guide_0042",
    }
    fake.users["o6_bmjrPTlm6"] = record
    user = client.user_info("o6_bmjrPTlm6")
    assert fake.calls[-1].params == {
        "openid": "o6_bmjrPTlm6",
        "lang": "zh_CN",
        "access_token": "ACCESS_TOKEN_0001",
    }
    assert (user.openid, user.subscribed, user.unionid) == ("o6_bmjrPTlm6", True, "o6_bmasdasdsad6")
    assert user.subscribe_time == datetime(2024, 4, 25, 9, 15, 4, tzinfo=UTC)
    assert (user.subscribe_scene, user.qr_scene, user.qr_scene_str) == (
        "ADD_SCENE_QR_CODE",
        98765,
        "guide_0042",
    )
    assert (user.remark, user.tagid_list, user.language) == (None, (128, 2), "zh_CN")
    assert user.raw == record
    with pytest.raises(WeChatError) as caught:
        client.user_info("o-unknown")
    assert caught.value.errcode == 40003


# --- unavailability and secrets --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "errcode", "message"),
    [
        ("http_502", None, "WeChat is unavailable: HTTP 502 from /cgi-bin/qrcode/create"),
        ("connect", None, "WeChat is unavailable: ConnectError: connection refused"),
        ("busy", -1, "WeChat error -1: system error rid: 6630a1b2-0f1e2d3c-4b5a6978"),
    ],
)
def test_outages_are_retryable_unavailability(
    client: WeChatClient, fake: FakeWeChat, kind: str, errcode: int | None, message: str
) -> None:
    client.access_token()
    fake.fail_next(kind)
    with pytest.raises(WeChatUnavailable) as caught:
        client.create_qr_ticket("a", permanent=False)
    assert (caught.value.errcode, caught.value.retryable, str(caught.value)) == (errcode, True, message)
    assert caught.value.__cause__ is None
    assert fake.codes == []


def test_no_error_message_carries_the_token_or_the_secret(client: WeChatClient, fake: FakeWeChat) -> None:
    token = client.access_token()
    fake.answer_next(40097, f"invalid args access_token={token} secret={fake.secret}")
    with pytest.raises(WeChatError) as caught:
        client.create_qr_ticket("a", permanent=False)
    assert caught.value.errcode == 40097
    assert token not in str(caught.value)
    assert fake.secret not in str(caught.value)
    assert caught.value.errmsg == "invalid args access_token=*** secret=*** rid: 6630a1b2-0f1e2d3c-4b5a6978"

"""The WeChat Pay profit-sharing client against the local fake (tests/fakes/wechatpay.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from datong.channels.wechatpay import signing
from datong.channels.wechatpay.client import WeChatPayClient
from datong.channels.wechatpay.errors import (
    WeChatPayBadSignature,
    WeChatPayNotEnough,
    WeChatPayNotFound,
    WeChatPayRejected,
    WeChatPayUnavailable,
)
from datong.channels.wechatpay.profit_sharing import (
    ProfitSharingClient,
    Receiver,
    ReceiverResult,
    ReturnResult,
    Split,
    SplitLine,
    SplitReceiver,
    SplitReturn,
    SplitState,
)
from datong.core.errors import ConfigurationError, ValidationFailed
from tests.fakes.clock import FakeClock
from tests.fakes.wechatpay import FakeWeChatPay

APPID = "wx0123456789abcdef"
TXN = "4200000000000000000000000001"
STORE = "1900000201"  # a store's merchant id
GUIDE = "oGuide_openid_0001"
# The fake clock starts at 2026-05-01 02:00 UTC, 10:00 in China.
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> FakeWeChatPay:
    fake = FakeWeChatPay(clock=clock)
    fake.add_transaction(TXN, amount_fen=10_000)
    return fake


@pytest.fixture
def pay(fake: FakeWeChatPay, clock: FakeClock) -> Iterator[WeChatPayClient]:
    client = WeChatPayClient(
        fake.mchid,
        merchant_serial_no=fake.merchant_serial_no,
        merchant_private_key=fake.merchant_private_key,
        platform_keys={fake.platform_key_id: fake.platform_public_key},
        transport=fake.transport,
        clock=clock,
    )
    with client:
        yield client


@pytest.fixture
def sharing(pay: WeChatPayClient) -> ProfitSharingClient:
    return ProfitSharingClient(pay, appid=APPID)


def store_line(amount_fen: int = 1_000) -> SplitReceiver:
    return SplitReceiver(type="MERCHANT_ID", account=STORE, amount_fen=amount_fen, description="门店分成")


def guide_line(amount_fen: int = 500, name: str | None = None) -> SplitReceiver:
    return SplitReceiver(
        type="PERSONAL_OPENID", account=GUIDE, amount_fen=amount_fen, description="导购佣金", name=name
    )


def add_both(sharing: ProfitSharingClient) -> None:
    sharing.add_receiver(
        receiver_type="MERCHANT_ID", account=STORE, relation_type="STORE", name="深圳某某服饰有限公司"
    )
    sharing.add_receiver(receiver_type="PERSONAL_OPENID", account=GUIDE, relation_type="STAFF")


# --- signatures ------------------------------------------------------------------------------------


def test_requests_are_signed_as_documented(sharing: ProfitSharingClient, fake: FakeWeChatPay) -> None:
    sharing.query_unsplit_amount_fen(TXN)
    headers = fake.calls[0].headers
    scheme, _, rest = headers["authorization"].partition(" ")
    fields = dict(part.split("=", 1) for part in rest.split(","))
    assert scheme == "WECHATPAY2-SHA256-RSA2048"
    assert list(fields) == ["mchid", "nonce_str", "signature", "timestamp", "serial_no"]
    assert fields["mchid"] == '"1900000100"'
    assert fields["serial_no"] == '"5157F09EFDC096DE15EBE81A47057A72"'
    assert fields["timestamp"] == f'"{int(T0.timestamp())}"'
    nonce = fields["nonce_str"].strip('"')
    message = (
        f"GET\n/v3/profitsharing/transactions/{TXN}/amounts\n{int(T0.timestamp())}\n{nonce}\n\n".encode()
    )
    fake.merchant_private_key.public_key().verify(
        base64.b64decode(fields["signature"].strip('"')), message, padding.PKCS1v15(), hashes.SHA256()
    )


def test_a_request_signed_with_another_key_is_refused_by_the_fake(
    fake: FakeWeChatPay, clock: FakeClock
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pay = WeChatPayClient(
        fake.mchid,
        merchant_serial_no=fake.merchant_serial_no,
        merchant_private_key=other,
        platform_keys={fake.platform_key_id: fake.platform_public_key},
        transport=fake.transport,
        clock=clock,
    )
    with pytest.raises(WeChatPayRejected) as caught:
        ProfitSharingClient(pay, appid=APPID).query_unsplit_amount_fen(TXN)
    assert (caught.value.status, caught.value.wechatpay_code, caught.value.retryable) == (
        401,
        "SIGN_ERROR",
        False,
    )


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("wrong_key", "the answer's signature does not verify"),
        ("tampered_body", "the answer's signature does not verify"),
        ("unsigned", "the answer is not signed"),
        ("stale", "the answer's timestamp '1777600200' is over 300 s from now"),
        ("unknown_serial", "the answer is signed with key 'PUB_KEY_ID_UNKNOWN', which is not configured"),
    ],
)
def test_a_forged_answer_is_rejected_and_nothing_in_it_is_used(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, forgery: str, reason: str
) -> None:
    add_both(sharing)
    fake.forge_next(forgery)
    with pytest.raises(WeChatPayBadSignature) as caught:
        sharing.request_split(
            transaction_id=TXN,
            out_order_no="P20260501-0001",
            receivers=[store_line()],
            unfreeze_unsplit=False,
        )
    assert str(caught.value) == reason
    assert (caught.value.status, caught.value.retryable) == (200, True)
    # The split did happen at WeChat Pay; asking again with the same out_order_no gets it, verified.
    again = sharing.request_split(
        transaction_id=TXN, out_order_no="P20260501-0001", receivers=[store_line()], unfreeze_unsplit=False
    )
    assert again.state is SplitState.PROCESSING
    assert len(fake.orders) == 1


def test_the_platform_key_loads_from_pem_and_the_nonce_is_32_hex() -> None:
    fake = FakeWeChatPay()
    pem = fake.platform_public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signing.load_platform_key(pem).public_numbers() == fake.platform_public_key.public_numbers()
    with pytest.raises(ConfigurationError) as caught:
        signing.load_platform_key(b"not a key")
    assert caught.value.field == "platform_key"
    nonce, another = signing.new_nonce(), signing.new_nonce()
    # 16 random bytes as upper-case hex, as new_nonce writes them.
    assert re.fullmatch(r"[0-9A-F]{32}", nonce) is not None, nonce
    assert re.fullmatch(r"[0-9A-F]{32}", another) is not None, another
    assert nonce != another


# --- receivers -------------------------------------------------------------------------------------


def test_add_a_merchant_receiver_with_its_name_encrypted(
    sharing: ProfitSharingClient, fake: FakeWeChatPay
) -> None:
    fake.merchant_names[STORE] = "深圳某某服饰有限公司"
    added = sharing.add_receiver(
        receiver_type="MERCHANT_ID",
        account=STORE,
        relation_type="CUSTOM",
        name="深圳某某服饰有限公司",
        custom_relation="加盟店",
    )
    assert added == Receiver(
        type="MERCHANT_ID", account=STORE, relation_type="CUSTOM", custom_relation="加盟店"
    )
    call = fake.calls[-1]
    assert call.headers["wechatpay-serial"] == fake.platform_key_id
    assert call.body["name"] != "深圳某某服饰有限公司"
    assert {key: value for key, value in call.body.items() if key != "name"} == {
        "appid": APPID,
        "type": "MERCHANT_ID",
        "account": STORE,
        "relation_type": "CUSTOM",
        "custom_relation": "加盟店",
    }
    assert fake.receivers[("MERCHANT_ID", STORE)]["name"] == "深圳某某服饰有限公司"
    with pytest.raises(WeChatPayRejected) as caught:
        sharing.add_receiver(
            receiver_type="MERCHANT_ID", account=STORE, relation_type="STORE", name="别的公司"
        )
    assert (caught.value.status, caught.value.wechatpay_code) == (400, "INVALID_REQUEST")
    assert fake.receivers[("MERCHANT_ID", STORE)]["relation_type"] == "CUSTOM"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"receiver_type": "BANK", "account": STORE, "relation_type": "STORE", "name": "x"}, "receiver_type"),
        (
            {"receiver_type": "MERCHANT_ID", "account": "19x", "relation_type": "STORE", "name": "x"},
            "account",
        ),
        ({"receiver_type": "MERCHANT_ID", "account": STORE, "relation_type": "STORE"}, "name"),
        ({"receiver_type": "PERSONAL_OPENID", "account": GUIDE, "relation_type": "FRIEND"}, "relation_type"),
        (
            {"receiver_type": "PERSONAL_OPENID", "account": GUIDE, "relation_type": "CUSTOM"},
            "custom_relation",
        ),
        (
            {
                "receiver_type": "PERSONAL_OPENID",
                "account": GUIDE,
                "relation_type": "CUSTOM",
                "custom_relation": "十一个字的关系说明啊啊",
            },
            "custom_relation",
        ),
        (
            {
                "receiver_type": "PERSONAL_OPENID",
                "account": GUIDE,
                "relation_type": "STAFF",
                "custom_relation": "x",
            },
            "custom_relation",
        ),
    ],
)
def test_bad_receivers_are_refused_before_any_call(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, kwargs: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        sharing.add_receiver(**kwargs)
    assert caught.value.field == field
    assert fake.calls == []
    assert fake.receivers == {}


# --- splits ----------------------------------------------------------------------------------------


def test_a_split_is_processing_then_finished_per_receiver(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, clock: FakeClock
) -> None:
    add_both(sharing)
    split = sharing.request_split(
        transaction_id=TXN,
        out_order_no="P20260501|guide*7@s-1_",
        receivers=[store_line(1_000), guide_line(500, name="张三")],
        unfreeze_unsplit=False,
    )
    body = fake.calls[-1].body
    assert body["receivers"][1]["name"] != "张三"
    assert fake.calls[-1].headers["wechatpay-serial"] == fake.platform_key_id
    assert {key: value for key, value in body.items() if key != "receivers"} == {
        "appid": APPID,
        "transaction_id": TXN,
        "out_order_no": "P20260501|guide*7@s-1_",
        "unfreeze_unsplit": False,
    }
    assert body["receivers"][0] == {
        "type": "MERCHANT_ID",
        "account": STORE,
        "amount": 1000,
        "description": "门店分成",
    }
    assert split == Split(
        transaction_id=TXN,
        out_order_no="P20260501|guide*7@s-1_",
        order_id="3008450740201411110000000001",
        state=SplitState.PROCESSING,
        receivers=(
            SplitLine(
                "MERCHANT_ID",
                STORE,
                1000,
                "门店分成",
                ReceiverResult.PENDING,
                None,
                "360111111111111111110001",
                T0,
                None,
            ),
            SplitLine(
                "PERSONAL_OPENID",
                GUIDE,
                500,
                "导购佣金",
                ReceiverResult.PENDING,
                None,
                "360111111111111111110002",
                T0,
                None,
            ),
        ),
    )
    assert sharing.query_unsplit_amount_fen(TXN) == 8_500
    clock.advance(minutes=2)
    fake.finish("P20260501|guide*7@s-1_", failures={GUIDE: "RECEIVER_REAL_NAME_NOT_VERIFIED"})
    done = sharing.query_split(transaction_id=TXN, out_order_no="P20260501|guide*7@s-1_")
    assert fake.calls[-1].path == "/v3/profitsharing/orders/P20260501|guide*7@s-1_"
    assert done.state is SplitState.FINISHED
    assert [(line.result, line.fail_reason, line.finish_time) for line in done.receivers] == [
        (ReceiverResult.SUCCESS, None, datetime(2026, 5, 1, 2, 2, tzinfo=UTC)),
        (ReceiverResult.CLOSED, "RECEIVER_REAL_NAME_NOT_VERIFIED", datetime(2026, 5, 1, 2, 2, tzinfo=UTC)),
    ]
    assert sharing.query_unsplit_amount_fen(TXN) == 9_000


def test_the_same_out_order_no_is_the_same_request(sharing: ProfitSharingClient, fake: FakeWeChatPay) -> None:
    add_both(sharing)

    def split(amount_fen: int) -> Split:
        return sharing.request_split(
            transaction_id=TXN,
            out_order_no="P1",
            receivers=[store_line(amount_fen), guide_line(name="张三")],
            unfreeze_unsplit=False,
        )

    first = split(1_000)
    assert split(1_000) == first  # the name is encrypted afresh each time; WeChat Pay compares plaintext
    fake.finish("P1")
    assert split(1_000).state is SplitState.FINISHED
    with pytest.raises(WeChatPayRejected) as caught:
        split(2_000)
    assert caught.value.wechatpay_code == "INVALID_REQUEST"
    assert len(fake.orders) == 1
    assert fake.transactions[TXN]["unsplit"] == 8_500


def test_a_split_beyond_the_unsplit_amount_is_not_enough(
    sharing: ProfitSharingClient, fake: FakeWeChatPay
) -> None:
    add_both(sharing)
    fake.max_ratio_bp = 10_000
    sharing.request_split(
        transaction_id=TXN, out_order_no="P1", receivers=[store_line(9_000)], unfreeze_unsplit=False
    )
    with pytest.raises(WeChatPayNotEnough) as caught:
        sharing.request_split(
            transaction_id=TXN, out_order_no="P2", receivers=[guide_line(1_001)], unfreeze_unsplit=False
        )
    assert (caught.value.status, caught.value.wechatpay_code) == (403, "NOT_ENOUGH")
    assert str(caught.value) == "WeChat Pay 403 NOT_ENOUGH: 分账金额不足"
    assert sorted(fake.orders) == ["P1"]
    assert fake.transactions[TXN]["unsplit"] == 1_000


def test_the_max_ratio_caps_what_is_shared(
    pay: WeChatPayClient, sharing: ProfitSharingClient, fake: FakeWeChatPay
) -> None:
    add_both(sharing)
    assert ProfitSharingClient(pay, appid=APPID, sub_mchid="1900000109").query_max_ratio_bp() == 3000
    with pytest.raises(WeChatPayRejected) as caught:
        sharing.request_split(
            transaction_id=TXN,
            out_order_no="P1",
            receivers=[store_line(2_000), guide_line(1_001)],
            unfreeze_unsplit=True,
        )
    assert caught.value.message == "WeChat Pay 400 INVALID_REQUEST: 分账金额超出最大分账比例"
    assert fake.orders == {}
    split = sharing.request_split(
        transaction_id=TXN,
        out_order_no="P1",
        receivers=[store_line(2_000), guide_line(1_000)],
        unfreeze_unsplit=True,
    )
    assert split.state is SplitState.PROCESSING
    assert sharing.query_unsplit_amount_fen(TXN) == 0  # the rest went back to the merchant


def test_the_max_ratio_query_needs_a_sub_merchant(sharing: ProfitSharingClient, fake: FakeWeChatPay) -> None:
    with pytest.raises(ValidationFailed) as caught:
        sharing.query_max_ratio_bp()
    assert caught.value.field == "sub_mchid"
    assert sharing.query_max_ratio_bp("1900000109") == 3000
    assert fake.calls[-1].path == "/v3/profitsharing/merchant-configs/1900000109"


def test_service_provider_mode_sends_sub_mchid(pay: WeChatPayClient, fake: FakeWeChatPay) -> None:
    partner = ProfitSharingClient(pay, appid=APPID, sub_mchid="1900000109")
    partner.request_split(
        transaction_id=TXN, out_order_no="P1", receivers=[store_line()], unfreeze_unsplit=False
    )
    assert fake.calls[-1].body["sub_mchid"] == "1900000109"
    partner.query_split(transaction_id=TXN, out_order_no="P1")
    assert fake.calls[-1].params == {"sub_mchid": "1900000109", "transaction_id": TXN}


def many(count: int) -> list[SplitReceiver]:
    return [
        SplitReceiver(type="PERSONAL_OPENID", account=f"oGuide{index:04d}", amount_fen=1, description="佣金")
        for index in range(count)
    ]


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"transaction_id": ""}, "transaction_id", "transaction_id must be 1 to 32 letters or digits"),
        ({"out_order_no": "P" * 65}, "out_order_no", "out_order_no must be 1 to 64 of 0-9 A-Z a-z _ - | * @"),
        ({"out_order_no": "P 1"}, "out_order_no", "out_order_no must be 1 to 64 of 0-9 A-Z a-z _ - | * @"),
        ({"receivers": []}, "receivers", "a split has 1 to 50 receivers, got 0"),
        ({"receivers": many(51)}, "receivers", "a split has 1 to 50 receivers, got 51"),
        (
            {"receivers": [store_line(0)]},
            "receivers[0].amount_fen",
            "receivers[0].amount_fen must be a whole number of fen, at least 1",
        ),
        (
            {"receivers": [store_line(), SplitReceiver("MERCHANT_ID", STORE, 5, "x")]},
            "receivers[1].account",
            "the same receiver appears twice in one split; give it one line with the total",
        ),
        (
            {"receivers": [SplitReceiver("MERCHANT_ID", STORE, 5, "说" * 81)]},
            "receivers[0].description",
            "receivers[0].description must be 1 to 80 characters",
        ),
        (
            {"receivers": [SplitReceiver("MERCHANT_ID", STORE, 5, "x", name="某公司")]},
            "receivers[0].name",
            "only a personal receiver carries a name",
        ),
        (
            {"receivers": [SplitReceiver("PERSONAL_SUB_OPENID", GUIDE, 5, "x")]},
            "receivers[0].type",
            "receivers[0].type must be one of MERCHANT_ID, PERSONAL_OPENID",
        ),
        ({"unfreeze_unsplit": None}, "unfreeze_unsplit", "unfreeze_unsplit must be true or false"),
    ],
)
def test_bad_splits_are_refused_before_any_call(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, changes: dict[str, object], field: str, reason: str
) -> None:
    request: dict[str, object] = {
        "transaction_id": TXN,
        "out_order_no": "P1",
        "receivers": [store_line()],
        "unfreeze_unsplit": False,
    } | changes
    with pytest.raises(ValidationFailed) as caught:
        sharing.request_split(**request)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.message) == (field, reason)
    assert fake.calls == []


def test_fifty_receivers_is_the_limit_that_passes(sharing: ProfitSharingClient, fake: FakeWeChatPay) -> None:
    split = sharing.request_split(
        transaction_id=TXN, out_order_no="P50", receivers=many(50), unfreeze_unsplit=False
    )
    assert len(split.receivers) == 50
    assert len(fake.calls[-1].body["receivers"]) == 50


# --- returns ---------------------------------------------------------------------------------------


def test_a_return_from_a_merchant_receiver(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, clock: FakeClock
) -> None:
    add_both(sharing)
    sharing.request_split(
        transaction_id=TXN,
        out_order_no="P1",
        receivers=[store_line(1_000), guide_line(500)],
        unfreeze_unsplit=False,
    )
    fake.finish("P1")
    clock.advance(days=3)
    back = sharing.request_return(
        out_order_no="P1", out_return_no="R1", return_mchid=STORE, amount_fen=400, description="用户退款"
    )
    assert fake.calls[-1].body == {
        "out_order_no": "P1",
        "out_return_no": "R1",
        "return_mchid": STORE,
        "amount": 400,
        "description": "用户退款",
    }
    when = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)
    assert back == SplitReturn(
        order_id="3008450740201411110000000001",
        out_order_no="P1",
        out_return_no="R1",
        return_id="3008450740201411119900000001",
        return_mchid=STORE,
        amount_fen=400,
        description="用户退款",
        result=ReturnResult.SUCCESS,
        fail_reason=None,
        create_time=when,
        finish_time=when,
    )
    assert (
        sharing.request_return(
            out_order_no="P1", out_return_no="R1", return_mchid=STORE, amount_fen=400, description="用户退款"
        )
        == back
    )
    assert sharing.query_return(out_order_no="P1", out_return_no="R1") == back
    assert fake.calls[-1].params == {"out_order_no": "P1"}
    with pytest.raises(WeChatPayRejected) as too_much:
        sharing.request_return(
            out_order_no="P1", out_return_no="R2", return_mchid=STORE, amount_fen=601, description="用户退款"
        )
    assert too_much.value.wechatpay_code == "INVALID_REQUEST"
    assert sorted(fake.returns) == ["R1"]


def test_returns_come_only_from_merchant_receivers(sharing: ProfitSharingClient, fake: FakeWeChatPay) -> None:
    add_both(sharing)
    sharing.request_split(
        transaction_id=TXN, out_order_no="P1", receivers=[guide_line(500)], unfreeze_unsplit=False
    )
    fake.finish("P1")
    with pytest.raises(ValidationFailed) as caught:
        sharing.request_return(
            out_order_no="P1", out_return_no="R1", return_mchid=GUIDE, amount_fen=100, description="退款"
        )
    assert caught.value.field == "return_mchid"
    with pytest.raises(WeChatPayRejected) as refused:
        sharing.request_return(
            out_order_no="P1", out_return_no="R1", return_mchid=STORE, amount_fen=100, description="退款"
        )
    assert refused.value.message == "WeChat Pay 400 INVALID_REQUEST: 回退方不存在"
    assert fake.returns == {}


def test_unknown_split_or_return_is_not_found(sharing: ProfitSharingClient) -> None:
    with pytest.raises(WeChatPayNotFound) as split:
        sharing.query_split(transaction_id=TXN, out_order_no="P404")
    assert (split.value.status, split.value.wechatpay_code) == (404, "RESOURCE_NOT_EXISTS")
    with pytest.raises(WeChatPayNotFound):
        sharing.query_return(out_order_no="P404", out_return_no="R404")


# --- outages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("connect", None, None), ("http_500", 500, "SYSTEM_ERROR"), ("http_429", 429, "FREQUENCY_LIMITED")],
)
def test_outages_are_retryable_and_a_retry_is_the_same_request(
    sharing: ProfitSharingClient, fake: FakeWeChatPay, kind: str, status: int | None, code: str | None
) -> None:
    fake.fail_next(kind)
    with pytest.raises(WeChatPayUnavailable) as caught:
        sharing.request_split(
            transaction_id=TXN, out_order_no="P1", receivers=[store_line()], unfreeze_unsplit=False
        )
    assert (caught.value.status, caught.value.wechatpay_code, caught.value.retryable) == (status, code, True)
    assert fake.orders == {}
    split = sharing.request_split(
        transaction_id=TXN, out_order_no="P1", receivers=[store_line()], unfreeze_unsplit=False
    )
    assert split.state is SplitState.PROCESSING
    assert fake.transactions[TXN]["unsplit"] == 9_000


def test_a_client_needs_a_platform_key_to_encrypt_with(fake: FakeWeChatPay) -> None:
    keys = {fake.platform_key_id: fake.platform_public_key, "PUB_KEY_ID_NEXT": fake.platform_public_key}
    with pytest.raises(ConfigurationError) as caught:
        WeChatPayClient(
            fake.mchid,
            merchant_serial_no=fake.merchant_serial_no,
            merchant_private_key=fake.merchant_private_key,
            platform_keys=keys,
        )
    assert caught.value.field == "encrypt_key_id"
    client = WeChatPayClient(
        fake.mchid,
        merchant_serial_no=fake.merchant_serial_no,
        merchant_private_key=fake.merchant_private_key,
        platform_keys=keys,
        encrypt_key_id="PUB_KEY_ID_NEXT",
    )
    assert client.encrypt_key_id == "PUB_KEY_ID_NEXT"
    assert repr(client) == "WeChatPayClient(mchid='1900000100')"

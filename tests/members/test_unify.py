"""Unification rules, end to end through the import pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from datong.channels.records import CARD_NO, NICK, OPENID, PHONE
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.members.models import Identity, MergeEvent, SourceRecord
from datong.members.unify import unify_all
from tests.members.helpers import active_members, card, fan, ingest, make_tenant, member_of, mini, tmall


def test_cards_sharing_a_phone_and_a_name_are_one_person(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [
            card(1, "pos_a", "A001", name="王芳", phone="13800138000"),
            card(2, "pos_a", "A002", name="王芳", phone="13800138000"),
        ],
    )
    a, b = (
        member_of(database, keyring, tenant, CARD_NO, "A001", "pos_a"),
        member_of(database, keyring, tenant, CARD_NO, "A002", "pos_a"),
    )
    assert a == b and len(a) == 1
    assert active_members(database, tenant) == 1


def test_household_sharing_a_phone_stays_two_people(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [
            card(1, "pos_a", "H001", name="张伟", phone="13912345678"),
            card(2, "pos_a", "H002", name="李娜", phone="13912345678"),
            card(3, "pos_a", "H003", phone="13912345678"),  # no name: could be either, so neither
        ],
    )
    owners = [member_of(database, keyring, tenant, CARD_NO, c, "pos_a") for c in ("H001", "H002", "H003")]
    assert len(set().union(*owners)) == 3
    assert len(member_of(database, keyring, tenant, PHONE, "13912345678")) == 3
    assert active_members(database, tenant) == 3


def test_traditional_characters_and_homophones_match_by_pinyin(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [card(1, "pos_a", "T001", name="張偉", phone="13700137000")],
    )
    ingest(
        database,
        keyring,
        tenant,
        "miniprogram-members",
        "miniprogram",
        [mini(1, "o-mini-1", phone="13700137000", name="章伟")],
        name="mini.csv",
    )
    assert member_of(database, keyring, tenant, CARD_NO, "T001", "pos_a") == member_of(
        database, keyring, tenant, OPENID, "o-mini-1", "wxmini"
    )
    assert active_members(database, tenant) == 1


def test_unionid_ties_fan_to_mini_program_member(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    ingest(database, keyring, tenant, "wechat-fans", "wechat", [fan(1, "o-fan-1", unionid="u-1")])
    ingest(
        database,
        keyring,
        tenant,
        "miniprogram-members",
        "miniprogram",
        [mini(1, "o-mini-1", unionid="u-1", phone="13600136000", name="陈静")],
        name="mini.csv",
    )
    assert member_of(database, keyring, tenant, OPENID, "o-fan-1", "wxapp") == member_of(
        database, keyring, tenant, OPENID, "o-mini-1", "wxmini"
    )
    assert active_members(database, tenant) == 1


def test_masked_phone_with_same_name_attaches_the_nick_to_the_only_candidate(
    database: Database, keyring: Keyring
) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [
            card(1, "pos_a", "M001", name="刘洋", phone="13512345678"),
            card(
                2, "pos_a", "M002", name="赵敏", phone="13598765678"
            ),  # another phone behind a different mask
        ],
    )
    ingest(
        database,
        keyring,
        tenant,
        "tmall-orders",
        "tmall",
        [
            tmall(1, "liuyang_88", receiver="刘洋", masked="135****5678"),
            tmall(
                2, "gift_sender", receiver="周杰", masked="135****5678"
            ),  # a gift: the receiver is not a member
        ],
        name="tmall.csv",
    )
    assert member_of(database, keyring, tenant, NICK, "liuyang_88") == member_of(
        database, keyring, tenant, CARD_NO, "M001", "pos_a"
    )
    sender = member_of(database, keyring, tenant, NICK, "gift_sender")
    assert len(sender) == 1 and sender != member_of(database, keyring, tenant, CARD_NO, "M001", "pos_a")
    with database.reading() as s:
        rule = s.scalar(select(Identity.rule).where(Identity.kind == NICK, Identity.value == "liuyang_88"))
    assert rule == "weak:mask+name_pinyin"


def test_masked_phone_matching_two_candidates_attaches_to_none(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [
            card(1, "pos_a", "D001", name="刘洋", phone="13512345678"),
            card(2, "pos_a", "D002", name="刘阳", phone="13500005678"),  # same mask, same pinyin
        ],
    )
    ingest(
        database,
        keyring,
        tenant,
        "tmall-orders",
        "tmall",
        [tmall(1, "ambiguous", receiver="刘洋", masked="135****5678")],
        name="tmall.csv",
    )
    owner = member_of(database, keyring, tenant, NICK, "ambiguous")
    assert owner.isdisjoint(member_of(database, keyring, tenant, CARD_NO, "D001", "pos_a"))
    assert owner.isdisjoint(member_of(database, keyring, tenant, CARD_NO, "D002", "pos_a"))
    assert active_members(database, tenant) == 3


def test_the_same_rows_twice_change_nothing(database: Database, keyring: Keyring) -> None:
    tenant = make_tenant(database)
    rows = [card(1, "pos_a", "R001", name="孙丽", phone="13311112222"), card(2, "pos_a", "R002", name="周强")]
    ingest(database, keyring, tenant, "members", "pos_a", rows)
    with database.reading() as s:
        before = (
            s.scalar(select(func.count()).select_from(SourceRecord)),
            s.scalar(select(func.count()).select_from(Identity)),
            active_members(database, tenant),
        )
    again = [
        card(1, "pos_a", "R001", name="孙丽", phone="13311112222"),
        card(2, "pos_a", "R002", name="周强"),
    ]
    ingest(database, keyring, tenant, "members", "pos_a", again, name="again.csv")
    with database.reading() as s:
        after = (
            s.scalar(select(func.count()).select_from(SourceRecord)),
            s.scalar(select(func.count()).select_from(Identity)),
            active_members(database, tenant),
        )
    assert before == after == (2, 3, 2)


def test_batch_unify_attaches_a_tmall_buyer_who_registered_later(
    database: Database, keyring: Keyring
) -> None:
    tenant = make_tenant(database)
    ingest(
        database,
        keyring,
        tenant,
        "tmall-orders",
        "tmall",
        [tmall(1, "early_buyer", receiver="吴磊", phone="13012341234")],
        name="tmall.csv",
    )
    ingest(
        database,
        keyring,
        tenant,
        "members",
        "pos_a",
        [card(1, "pos_a", "L001", name="吴磊", phone="13012341234")],
    )
    assert active_members(database, tenant) == 2  # online resolution looks only forward
    with database.unit_of_work() as s:
        stats = unify_all(s, tenant_id=tenant, keyring=keyring, actor="system:test")
    assert stats.members_merged == 1
    assert member_of(database, keyring, tenant, NICK, "early_buyer") == member_of(
        database, keyring, tenant, CARD_NO, "L001", "pos_a"
    )
    with database.reading() as s:
        event = s.scalars(select(MergeEvent)).one()
    assert event.rule == "weak:phone+name_pinyin"

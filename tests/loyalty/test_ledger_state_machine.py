"""The points ledger against a simple in-memory model, as a Hypothesis state machine.

Every step drives the real services on an explicit clock (``at=``) and repeats the step on the model:
lots with their remaining points and expiry, open holds, orders with what they earned and what refunds
took back, and the net posted and pending amount of every ledger account. After every step the ledger
must agree with the model exactly: each member's spendable balance, each account's running totals and
its transfers, every lot, and debits equal to credits across the whole ledger.

The program has no earn rules and no tiers, so a sale earns ``paid_fen // 100`` points. Lots expire at
the end of the day (China time) two months after the earning. The service draws on a member's lots
soonest expiry first and breaks ties by transfer id, which the model cannot know; so before a step opens
a lot, the model moves its clock on by whole days until the new lot's expiry differs from the expiry of
every other lot of that member.
"""

from __future__ import annotations

import calendar
import copy
import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from datong.core.db import Database
from datong.core.errors import Conflict, ValidationFailed
from datong.ledger.models import PENDING, POST_PENDING, POSTED, Account, Transfer
from datong.ledger.queries import Totals, account_totals, verify_ledger
from datong.ledger.service import LimitExceeded
from datong.loyalty import redemptions, refunds, service
from datong.loyalty.expiry import expire_points
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import Program
from datong.loyalty.queries import verify_lots
from datong.orders.service import get_order, record_refund
from tests.loyalty.helpers import ACTOR, T0, PointsWorld, make_world, pos_order

HOLD_SECONDS = 600
EXPIRY_MONTHS = 2
PROGRAM: dict[str, Any] = {
    "code": "main",
    "name": "模型积分",
    "points_per_yuan": 1,
    "fen_per_point": 1,
    "expiry": {"policy": "rolling_months", "months": EXPIRY_MONTHS},
    "tier_basis": "points",
    "hold_seconds": HOLD_SECONDS,
    "tiers": [],
    "earn_rules": [],
    "rewards": [],
}
CHINA = timezone(timedelta(hours=8))
_TENANTS = itertools.count(1)

MEMBER = st.integers(min_value=0, max_value=2)  # taken modulo the number of members
STORE = st.sampled_from(["D1", "F1", None])  # None: online, no store
PAID = st.integers(min_value=0, max_value=100_000)
UNPAID = st.one_of(st.just(0), st.integers(min_value=1, max_value=20_000))  # paid with something else
# How much a spend asks, in percent of what the member can spend: above 100 it must be refused.
SHARE = st.integers(min_value=1, max_value=125)


def _expiry(at: datetime) -> datetime:
    """The end of the day, China time, ``EXPIRY_MONTHS`` months after ``at`` (the month's last day when
    it is shorter: 31 December + 2 months is 28 or 29 February)."""
    local = at.astimezone(CHINA)
    months = local.year * 12 + local.month - 1 + EXPIRY_MONTHS
    year, month = divmod(months, 12)
    day = min(local.day, calendar.monthrange(year, month + 1)[1])
    end = datetime.combine(date(year, month + 1, day) + timedelta(days=1), time(), tzinfo=CHINA)
    return end.astimezone(UTC)


@dataclass
class Lot:
    member: int
    points: int
    remaining: int
    expires_at: datetime
    issuer: str
    order_no: str | None


@dataclass
class Hold:
    member: int
    honourer: str
    draws: list[tuple[int, int]]  # (index into lots, points)
    timeout_at: datetime
    state: str = "open"  # open | posted | voided

    @property
    def points(self) -> int:
        return sum(points for _lot, points in self.draws)


@dataclass
class OrderModel:
    member: int
    channel: str
    total_fen: int
    earned: int
    refunded_fen: int = 0
    clawed: int = 0


class LedgerMachine(RuleBasedStateMachine):
    db: ClassVar[Database]

    holds = Bundle("holds")
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.world: PointsWorld | None = None
        self.now = T0
        self.lots: list[Lot] = []
        self.hold_book: dict[str, Hold] = {}
        self.order_book: dict[str, OrderModel] = {}
        # Net posted (credits - debits) and net pending, per (account kind, holder).
        self.posted: dict[tuple[str, str], int] = defaultdict(int)
        self.pending: dict[tuple[str, str], int] = defaultdict(int)
        self.serial = itertools.count(1)

    # --- the model ------------------------------------------------------------------------------

    @property
    def w(self) -> PointsWorld:
        assert self.world is not None
        return self.world

    def program(self, s: Session) -> Program:
        return self.w.program(s)

    def member(self, index: int) -> int:
        return index % len(self.w.members)

    def spender(self, index: int) -> int:
        """A member who has points to spend, if any has (else any member: the spend is refused)."""
        rich = [m for m in range(len(self.w.members)) if self.spendable_after_timeouts(m) > 0]
        return rich[index % len(rich)] if rich else self.member(index)

    def member_key(self, member: int) -> tuple[str, str]:
        return ("member", self.w.members[member])

    def spendable(self, member: int) -> int:
        return sum(
            lot.remaining
            for lot in self.lots
            if lot.member == member and lot.remaining > 0 and lot.expires_at > self.now
        )

    def plan(self, member: int, points: int, prefer: str | None = None) -> list[tuple[int, int]] | None:
        """The lots a spend of ``points`` draws on (the order's own first, then soonest expiry), or None
        when the member has too few."""
        candidates = sorted(
            (
                index
                for index, lot in enumerate(self.lots)
                if lot.member == member and lot.remaining > 0 and lot.expires_at > self.now
            ),
            key=lambda index: (
                prefer is None or self.lots[index].order_no != prefer,
                self.lots[index].expires_at,
            ),
        )
        plan, left = [], points
        for index in candidates:
            if left == 0:
                break
            take = min(left, self.lots[index].remaining)
            plan.append((index, take))
            left -= take
        return None if left else plan

    def move(self, debit: tuple[str, str], credit: tuple[str, str], amount: int, *, pending: bool) -> None:
        book = self.pending if pending else self.posted
        book[debit] -= amount
        book[credit] += amount

    def open_lot(self, member: int, points: int, issuer: str, order_no: str | None, source: str) -> None:
        self.lots.append(Lot(member, points, points, _expiry(self.now), issuer, order_no))
        self.move((source, issuer), self.member_key(member), points, pending=False)

    def fresh_expiry_day(self, member: int) -> None:
        taken = {lot.expires_at for lot in self.lots if lot.member == member}
        while _expiry(self.now) in taken:
            self.now += timedelta(days=1)

    def resolve(self, hold: Hold, *, post: bool) -> None:
        for index, points in hold.draws:
            self.move(self.member_key(hold.member), ("redemption", hold.honourer), -points, pending=True)
            if post:
                self.move(self.member_key(hold.member), ("redemption", hold.honourer), points, pending=False)
            else:
                self.lots[index].remaining += points
        hold.state = "posted" if post else "voided"

    def timed_out(self, member: int | None = None) -> list[Hold]:
        return [
            hold
            for hold in self.hold_book.values()
            if hold.state == "open"
            and hold.timeout_at <= self.now
            and (member is None or hold.member == member)
        ]

    def snapshot(self) -> tuple[Any, ...]:
        return copy.deepcopy((self.lots, self.hold_book, self.posted, self.pending))

    def restore(self, saved: tuple[Any, ...]) -> None:
        self.lots, self.hold_book, self.posted, self.pending = saved

    def transfer_count(self) -> int:
        with self.db.reading() as s:
            return int(
                s.scalar(
                    select(func.count()).select_from(Transfer).where(Transfer.tenant_id == self.w.tenant_id)
                )
                or 0
            )

    # --- steps ----------------------------------------------------------------------------------

    @initialize(
        target=orders,
        members=st.integers(min_value=2, max_value=3),
        opening=st.lists(st.integers(min_value=0, max_value=100_000), min_size=3, max_size=3),
    )
    def build(self, members: int, opening: list[int]) -> Any:
        """A fresh brand (its own tenant) with 2 or 3 members, each with an opening sale at D1."""
        self.world = make_world(self.db, members=members, code=f"ledger-sm-{next(_TENANTS)}", program=PROGRAM)
        return multiple(*(self.sale(m, paid_fen, 0, "D1") for m, paid_fen in enumerate(opening[:members])))

    @rule(target=orders, member=MEMBER, paid_fen=PAID, unpaid_fen=UNPAID, store=STORE)
    def earn(self, member: int, paid_fen: int, unpaid_fen: int, store: str | None) -> str:
        return self.sale(self.member(member), paid_fen, unpaid_fen, store)

    @rule(target=orders, member=MEMBER, paid_fen=PAID, unpaid_fen=UNPAID)
    def earn_online(self, member: int, paid_fen: int, unpaid_fen: int) -> str:
        return self.sale(self.member(member), paid_fen, unpaid_fen, None)

    def sale(self, m: int, paid_fen: int, unpaid_fen: int, store: str | None) -> str:
        """A completed sale that earns ``paid_fen // 100`` points."""
        self.fresh_expiry_day(m)
        order_no = f"O{next(self.serial)}"
        channel = "pos" if store else "miniprogram"
        with self.db.unit_of_work() as s:
            order = pos_order(
                s,
                self.w,
                self.w.members[m],
                order_no,
                paid_fen,
                store=store,
                channel=channel,
                total_fen=paid_fen + unpaid_fen,
                at=self.now,
            )
            result = service.earn_for_order(s, program=self.program(s), order=order, actor=ACTOR, at=self.now)
        points = paid_fen // 100
        event(f"earned: {bool(points)}")
        assert (result.points, result.earned_now, len(result.transfer_ids)) == (points, True, min(points, 1))
        if points:
            self.open_lot(m, points, self.w.party(store), order_no, "issuance")
        assert result.balance == self.spendable(m)
        self.order_book[order_no] = OrderModel(m, channel, paid_fen + unpaid_fen, points)
        return order_no

    @rule(order_no=orders)
    def earn_again(self, order_no: str) -> None:
        """An order earns once: asking again changes nothing."""
        order = self.order_book[order_no]
        before = self.transfer_count()
        with self.db.unit_of_work() as s:
            row = get_order(s, tenant_id=self.w.tenant_id, channel=order.channel, order_no=order_no)
            result = service.earn_for_order(s, program=self.program(s), order=row, actor=ACTOR, at=self.now)
        if order.refunded_fen and order.refunded_fen == order.total_fen:  # refunded: it no longer earns
            expected = (0, False, 0)
        elif order.earned:  # the first earning, again
            expected = (order.earned, False, 1)
        else:  # earned nothing: worked out again, still nothing
            expected = (0, True, 0)
        assert (result.points, result.earned_now, len(result.transfer_ids)) == expected
        assert result.balance == self.spendable(order.member)
        assert self.transfer_count() == before

    @staticmethod
    def points_for(share: int, available: int) -> int:
        return max(1, available * share // 100)

    def spend(self, m: int, points: int, store: str | None, *, hold: bool) -> str | None:
        """Redeem in one step or hold; first the member's holds past their time are voided. Returns
        the hold's id, or None when the spend was refused (and changed nothing)."""
        saved = self.snapshot()
        for expired in self.timed_out(m):
            self.resolve(expired, post=False)
        plan = self.plan(m, points)
        store_id = self.w.stores[store] if store else None
        channel = "pos" if store else "miniprogram"

        def call(s: Session) -> redemptions.Redemption:
            return redemptions.redeem_points(
                s,
                program=self.program(s),
                member_id=self.w.members[m],
                points=points,
                channel=channel,
                store_id=store_id,
                hold=hold,
                actor=ACTOR,
                at=self.now,
            )

        if plan is None:
            self.restore(saved)
            before = self.transfer_count()
            with pytest.raises(LimitExceeded) as refused, self.db.unit_of_work() as s:
                call(s)
            assert refused.value.detail == {"available": self.spendable_after_timeouts(m)}
            assert self.transfer_count() == before
            event("spend refused: too few points")
            return None
        with self.db.unit_of_work() as s:
            result = call(s)
        event(f"spend {'held' if hold else 'posted'}, whole balance: {points == self.spendable(m)}")
        honourer = self.w.party(store)
        issuers: dict[str, int] = defaultdict(int)
        for index, take in plan:
            self.lots[index].remaining -= take
            issuers[self.lots[index].issuer] += take
            self.move(self.member_key(m), ("redemption", honourer), take, pending=hold)
        expires = self.now + timedelta(seconds=HOLD_SECONDS) if hold else None
        assert result.balance == self.spendable(m)
        assert (result.status, result.points, result.value_fen, result.issuers) == (
            "held" if hold else "posted",
            points,
            points,
            dict(issuers),
        )
        assert (len(result.transfer_ids), result.hold_expires_at) == (len(plan), expires)
        if hold:
            assert expires is not None
            self.hold_book[result.id] = Hold(m, honourer, plan, expires)
        return result.id

    def spendable_after_timeouts(self, member: int) -> int:
        restored = sum(
            points
            for hold in self.timed_out(member)
            for index, points in hold.draws
            if self.lots[index].expires_at > self.now
        )
        return self.spendable(member) + restored

    def confirm(self, hold_id: str) -> None:
        hold = self.hold_book[hold_id]
        before = self.transfer_count()

        def call(s: Session) -> redemptions.Redemption:
            return redemptions.resolve_hold(
                s, program=self.program(s), hold_id=hold_id, post=True, actor=ACTOR, at=self.now
            )

        if hold.state == "voided" or (hold.state == "open" and hold.timeout_at <= self.now):
            event(f"confirm refused: hold {hold.state}")
            with pytest.raises(Conflict) as refused, self.db.unit_of_work() as s:
                call(s)
            assert refused.value.message == (
                f"hold {hold_id} was already voided"
                if hold.state == "voided"
                else f"hold {hold_id} timed out at {hold.timeout_at.isoformat()}"
            )
            assert self.transfer_count() == before
            return
        with self.db.unit_of_work() as s:
            result = call(s)
        assert (result.id, result.status, result.points) == (hold_id, "posted", hold.points)
        event(f"confirmed a hold that was {hold.state}")
        if hold.state == "open":
            self.resolve(hold, post=True)
            assert self.transfer_count() == before + len(hold.draws)
        else:
            assert self.transfer_count() == before
        assert result.balance == self.spendable(hold.member)

    def void(self, hold_id: str) -> None:
        hold = self.hold_book[hold_id]
        before = self.transfer_count()

        def call(s: Session) -> redemptions.Redemption:
            return redemptions.resolve_hold(
                s, program=self.program(s), hold_id=hold_id, post=False, actor=ACTOR, at=self.now
            )

        if hold.state == "posted":
            with pytest.raises(Conflict) as refused, self.db.unit_of_work() as s:
                call(s)
            assert refused.value.message == f"hold {hold_id} was already confirmed"
            assert self.transfer_count() == before
            return
        with self.db.unit_of_work() as s:
            result = call(s)
        assert (result.id, result.status, result.points) == (hold_id, "voided", hold.points)
        event(f"voided a hold that was {hold.state}")
        if hold.state == "open":
            self.resolve(hold, post=False)
            assert self.transfer_count() == before + len(hold.draws)
        else:
            assert self.transfer_count() == before
        assert result.balance == self.spendable(hold.member)

    def sweep_holds(self) -> None:
        due = self.timed_out()
        with self.db.unit_of_work() as s:
            voided = redemptions.void_timed_out_holds(s, program=self.program(s), at=self.now)
        assert voided == sum(len(hold.draws) for hold in due)
        event(f"sweeper voided holds: {bool(due)}")
        for hold in due:
            self.resolve(hold, post=False)

    @rule(member=MEMBER, share=SHARE, store=STORE)
    def redeem(self, member: int, share: int, store: str | None) -> None:
        m = self.spender(member)
        self.spend(m, self.points_for(share, self.spendable_after_timeouts(m)), store, hold=False)

    @rule(
        target=holds,
        member=MEMBER,
        share=SHARE,
        store=STORE,
        then=st.sampled_from(["keep", "confirm", "void", "time_out"]),
        late=st.integers(min_value=0, max_value=300),
    )
    def hold(self, member: int, share: int, store: str | None, then: str, late: int) -> Any:
        """Hold points, then confirm them, void them, let the hold time out, or keep it open for a later
        step (which may find it timed out)."""
        m = self.spender(member)
        hold_id = self.spend(m, self.points_for(share, self.spendable_after_timeouts(m)), store, hold=True)
        if hold_id is not None and then == "confirm":
            self.confirm(hold_id)
        elif hold_id is not None and then == "void":
            self.void(hold_id)
        elif then == "time_out":  # nobody resolves it: once the clock passes its time the sweeper voids it
            self.now += timedelta(seconds=HOLD_SECONDS + late)
            self.sweep_holds()
            assert hold_id is None or self.hold_book[hold_id].state == "voided"
        return multiple() if hold_id is None else hold_id

    @rule(hold_id=holds)
    def confirm_hold(self, hold_id: str) -> None:
        self.confirm(hold_id)

    @rule(hold_id=holds)
    def void_hold(self, hold_id: str) -> None:
        self.void(hold_id)

    @rule(seconds=st.integers(min_value=0, max_value=2 * HOLD_SECONDS))
    def wait_then_sweep_holds(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.sweep_holds()

    @rule(order_no=orders, whole=st.booleans(), part=st.integers(min_value=1, max_value=10**9))
    def refund(self, order_no: str, whole: bool, part: int) -> None:
        order = self.order_book[order_no]
        left = order.total_fen - order.refunded_fen
        refund_no = f"R{next(self.serial)}"
        if left == 0:  # nothing left to refund: refused, nothing changes
            before = self.transfer_count()
            with pytest.raises(ValidationFailed) as refused, self.db.unit_of_work() as s:
                row = get_order(s, tenant_id=self.w.tenant_id, channel=order.channel, order_no=order_no)
                record_refund(
                    s, tenant_id=self.w.tenant_id, order=row, refund_no=refund_no, amount_fen=1, at=self.now
                )
            assert refused.value.field == "amount_fen"
            assert self.transfer_count() == before
            return
        amount = left if whole else 1 + part % left
        with self.db.unit_of_work() as s:
            row = get_order(s, tenant_id=self.w.tenant_id, channel=order.channel, order_no=order_no)
            refund, created = record_refund(
                s, tenant_id=self.w.tenant_id, order=row, refund_no=refund_no, amount_fen=amount, at=self.now
            )
            result = refunds.refund_points(
                s, program=self.program(s), order=row, refund=refund, actor=ACTOR, at=self.now
            )
        assert created
        order.refunded_fen += amount
        if order.refunded_fen >= order.total_fen:
            target = order.earned
        else:
            target = order.earned * order.refunded_fen // order.total_fen
        want = max(target - order.clawed, 0)
        available = sum(
            lot.remaining
            for lot in self.lots
            if lot.member == order.member and lot.remaining > 0 and lot.expires_at > self.now
        )
        take = min(want, available)
        plan = self.plan(order.member, take, prefer=order_no) if take else []
        assert plan is not None
        for index, points in plan:
            lot = self.lots[index]
            lot.remaining -= points
            self.move(self.member_key(order.member), ("issuance", lot.issuer), points, pending=False)
        order.clawed += take
        event(f"refund: clawed back {bool(take)}, shortfall {want > take}")
        assert (result.clawed_back, result.given_back, result.shortfall) == (take, 0, want - take)
        assert len(result.transfer_ids) == len(plan)
        assert result.balance == self.spendable(order.member)

    @rule(member=MEMBER, credit=st.booleans(), amount=st.integers(min_value=1, max_value=400), share=SHARE)
    def adjust(self, member: int, credit: bool, amount: int, share: int) -> None:
        m = self.member(member)
        points = amount if credit else -self.points_for(share, self.spendable(m))

        def call(s: Session) -> list[Transfer]:
            return service.adjust_points(
                s,
                program=self.program(s),
                member_id=self.w.members[m],
                points=points,
                reason="模型校正",
                actor=ACTOR,
                at=self.now,
            )

        if points > 0:
            self.fresh_expiry_day(m)
            with self.db.unit_of_work() as s:
                transfers = call(s)
            assert [(t.code, t.amount) for t in transfers] == [("adjust", points)]
            self.open_lot(m, points, "hq", None, "adjustment")
            return
        plan = self.plan(m, -points)  # a debit adjustment does not void timed-out holds first
        if plan is None:
            before = self.transfer_count()
            with pytest.raises(LimitExceeded) as refused, self.db.unit_of_work() as s:
                call(s)
            assert refused.value.detail == {"available": self.spendable(m)}
            assert self.transfer_count() == before
            return
        with self.db.unit_of_work() as s:
            transfers = call(s)
        assert [t.amount for t in transfers] == [take for _index, take in plan]
        for index, take in plan:
            self.lots[index].remaining -= take
            self.move(self.member_key(m), ("adjustment", "hq"), take, pending=False)

    @rule(days=st.integers(min_value=0, max_value=90), seconds=st.integers(min_value=0, max_value=86_399))
    def expire(self, days: int, seconds: int) -> None:
        self.now += timedelta(days=days, seconds=seconds)
        due = [lot for lot in self.lots if lot.remaining > 0 and lot.expires_at <= self.now]
        with self.db.unit_of_work() as s:
            swept = expire_points(s, program=self.program(s), at=self.now)
        assert (swept.lots, swept.points, swept.accounts) == (
            len(due),
            sum(lot.remaining for lot in due),
            len({lot.member for lot in due}),
        )
        event(f"expiry swept lots: {bool(due)}")
        for lot in due:
            self.move(self.member_key(lot.member), ("breakage", lot.issuer), lot.remaining, pending=False)
            lot.remaining = 0

    # --- what must hold after every step -------------------------------------------------------

    @invariant()
    def ledger_agrees_with_model(self) -> None:
        if self.world is None:
            return
        tenant_id = self.w.tenant_id
        with self.db.reading() as s:
            program = self.program(s)
            assert verify_ledger(s, tenant_id=tenant_id) == []
            assert verify_lots(s, program=program) == []
            accounts = {
                account.id: account
                for account in s.scalars(
                    select(Account).where(
                        Account.tenant_id == tenant_id, Account.ledger_id == program.ledger_id
                    )
                )
            }
            resolution = aliased(Transfer)
            still_open = ~select(resolution.id).where(resolution.pending_id == Transfer.id).exists()
            posted = Transfer.kind.in_((POSTED, POST_PENDING))

            def sums(side: Any, *conditions: Any) -> dict[str, int]:
                rows = s.execute(
                    select(side, func.sum(Transfer.amount))
                    .where(Transfer.tenant_id == tenant_id, *conditions)
                    .group_by(side)
                ).all()
                return {account_id: int(total) for account_id, total in rows}

            debits_posted = sums(Transfer.debit_account_id, posted)
            credits_posted = sums(Transfer.credit_account_id, posted)
            debits_pending = sums(Transfer.debit_account_id, Transfer.kind == PENDING, still_open)
            credits_pending = sums(Transfer.credit_account_id, Transfer.kind == PENDING, still_open)
            by_key = {(a.kind, a.holder): a for a in accounts.values()}
            for m, member_id in enumerate(self.w.members):
                lots_left = sum(lot.remaining for lot in self.lots if lot.member == m)
                held = sum(h.points for h in self.hold_book.values() if h.member == m and h.state == "open")
                account = by_key.get(("member", member_id))
                if account is None:
                    assert (lots_left, held, self.spendable(m)) == (0, 0, 0)
                    continue
                kept = Totals(
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                )
                # verify_ledger compared them with account_totals already; here with plain sums too.
                assert kept == Totals(
                    debits_pending.get(account.id, 0),
                    debits_posted.get(account.id, 0),
                    credits_pending.get(account.id, 0),
                    credits_posted.get(account.id, 0),
                )
                assert kept.credit_balance >= 0
                assert (kept.credit_balance, kept.debits_pending, kept.credits_pending) == (
                    lots_left,
                    held,
                    0,
                )
                assert spendable_points(s, account_id=account.id, at=self.now) == self.spendable(m)

        assert sum(debits_posted.values()) == sum(credits_posted.values())
        assert sum(debits_pending.values()) == sum(credits_pending.values())
        touched = set(debits_posted) | set(credits_posted) | set(debits_pending) | set(credits_pending)
        assert touched <= set(accounts)  # no transfer names an account outside the program's ledger

        def net(credits: dict[str, int], debits: dict[str, int]) -> dict[tuple[str, str], int]:
            out = {
                (accounts[a].kind, accounts[a].holder): credits.get(a, 0) - debits.get(a, 0) for a in touched
            }
            return {key: value for key, value in out.items() if value}

        assert net(credits_posted, debits_posted) == {k: v for k, v in self.posted.items() if v}
        assert net(credits_pending, debits_pending) == {k: v for k, v in self.pending.items() if v}

    def teardown(self) -> None:
        """At the end of an example, every account of the ledger (members, and the owners' issuance,
        redemption, breakage and adjustment accounts, which keep no running totals) summed by
        ``account_totals`` agrees with the model; each member's running totals agree with it too."""
        if self.world is None:
            return
        with self.db.reading() as s:
            program = self.program(s)
            accounts = list(
                s.scalars(
                    select(Account).where(
                        Account.tenant_id == self.w.tenant_id, Account.ledger_id == program.ledger_id
                    )
                )
            )
            summed = {account.id: account_totals(s, account.id) for account in accounts}
        for account in accounts:
            if account.kind == "member":
                kept = Totals(
                    account.debits_pending,
                    account.debits_posted,
                    account.credits_pending,
                    account.credits_posted,
                )
                assert kept == summed[account.id]
        posted = {
            (a.kind, a.holder): summed[a.id].credits_posted - summed[a.id].debits_posted for a in accounts
        }
        pending = {
            (a.kind, a.holder): summed[a.id].credits_pending - summed[a.id].debits_pending for a in accounts
        }
        assert {k: v for k, v in posted.items() if v} == {k: v for k, v in self.posted.items() if v}
        assert {k: v for k, v in pending.items() if v} == {k: v for k, v in self.pending.items() if v}


SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_the_ledger_agrees_with_a_simple_model_after_every_step(database: Database) -> None:
    machine = type("LedgerMachineOnTestDatabase", (LedgerMachine,), {"db": database})
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_the_model_expiry_is_the_end_of_the_china_day_two_months_on() -> None:
    """The model's own expiry rule, pinned to figures worked out by hand."""
    assert _expiry(T0) == datetime(2026, 5, 10, 16, 0, tzinfo=UTC)  # 2026-05-11 00:00 in China
    late_evening_utc = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 2026-03-01 01:00 in China
    assert _expiry(late_evening_utc) == datetime(2026, 5, 1, 16, 0, tzinfo=UTC)
    new_year_eve = datetime(2026, 12, 31, 4, 0, tzinfo=UTC)  # 28 February 2027 is the month's last day
    assert _expiry(new_year_eve) == datetime(2027, 2, 28, 16, 0, tzinfo=UTC)
    assert _expiry(datetime(2027, 12, 30, 4, 0, tzinfo=UTC)) == datetime(2028, 2, 29, 16, 0, tzinfo=UTC)

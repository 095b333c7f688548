"""Unification against the database: online (an import chunk, a registration) and batch (``datong unify``).

Both load nodes, run the pure rules in ``identity/matching.py``, and apply the groups: new members for
new people, merges (with their evidence) where a group spans members, identities for every new key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datong.channels.records import IdentityKey
from datong.core.crypto import Keyring
from datong.core.ids import new_id
from datong.identity.matching import (
    ACCOUNT_KINDS,
    EXCLUSIVE_KINDS,
    Group,
    Link,
    Node,
    WeakHint,
    key_of,
    resolve,
)
from datong.members import service
from datong.members.models import ACTIVE, Identity, Member, Separation, SourceRecord

_IN_CHUNK = 900  # stay under every database's bound-parameter limit


@dataclass
class PendingRecord:
    """A stored source record waiting to be resolved, with what the importer found in it."""

    record: SourceRecord
    identities: list[IdentityKey]
    names: frozenset[str] = frozenset()
    phone_masks: frozenset[str] = frozenset()
    hints: list[WeakHint] = field(default_factory=list)


@dataclass
class UnifyStats:
    members_created: int = 0
    members_merged: int = 0
    identities_added: int = 0
    records_attached_weakly: int = 0
    touched: set[str] = field(default_factory=set)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


def _member_nodes(
    session: Session, tenant_id: str, member_ids: set[str]
) -> tuple[list[Node], dict[tuple[str, str, str], set[str]]]:
    keys: dict[str, list[str]] = defaultdict(list)
    masks: dict[str, set[str]] = defaultdict(set)
    held: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    names: dict[str, list[str]] = {}
    for ids in _chunks(sorted(member_ids)):
        for member_id, kind, namespace, lookup, mask in session.execute(
            select(
                Identity.member_id, Identity.kind, Identity.namespace, Identity.lookup, Identity.mask_bidx
            ).where(Identity.member_id.in_(ids))
        ):
            keys[member_id].append(key_of(kind, namespace, lookup))
            held[(kind, namespace, lookup)].add(member_id)
            if mask:
                masks[member_id].add(mask)
        names.update(
            {m: k for m, k in session.execute(select(Member.id, Member.name_keys).where(Member.id.in_(ids)))}
        )
    nodes = [
        Node(
            id=m,
            keys=keys[m],
            names=frozenset(names.get(m) or ()),
            phone_masks=frozenset(masks[m]),
            member_id=m,
        )
        for m in sorted(member_ids)
    ]
    return nodes, held


def _separations(session: Session, tenant_id: str, member_ids: set[str]) -> set[frozenset[str]]:
    found: set[frozenset[str]] = set()
    for ids in _chunks(sorted(member_ids)):
        for a, b in session.execute(
            select(Separation.member_a, Separation.member_b).where(
                Separation.tenant_id == tenant_id,
                or_(Separation.member_a.in_(ids), Separation.member_b.in_(ids)),
            )
        ):
            found.add(frozenset((a, b)))
    return found


def _touched_members(
    session: Session, tenant_id: str, pending: list[PendingRecord], lookups: dict[str, set[tuple[str, str]]]
) -> set[str]:
    touched: set[str] = set()
    for chunk in _chunks(sorted(lookups)):
        rows = session.execute(
            select(Identity.member_id, Identity.kind, Identity.namespace, Identity.lookup)
            .join(Member, Member.id == Identity.member_id)
            .where(Identity.tenant_id == tenant_id, Identity.lookup.in_(chunk), Member.status == ACTIVE)
        )
        touched.update(m for m, kind, ns, lookup in rows if (kind, ns) in lookups[lookup])
    phone_hints = sorted({h.lookup for p in pending for h in p.hints if h.by == "phone"})
    mask_hints = sorted({h.lookup for p in pending for h in p.hints if h.by == "mask"})
    for column, values in ((Identity.lookup, phone_hints), (Identity.mask_bidx, mask_hints)):
        for chunk in _chunks(values):
            touched.update(
                session.scalars(
                    select(Identity.member_id)
                    .join(Member, Member.id == Identity.member_id)
                    .where(
                        Identity.tenant_id == tenant_id,
                        Identity.kind == "phone",
                        column.in_(chunk),
                        Member.status == ACTIVE,
                    )
                )
            )
    return touched


def _survivor(session: Session, member_ids: list[str]) -> str:
    """The member with the most identities survives; the oldest when tied (ids are time-ordered)."""
    counts: dict[str, int] = defaultdict(int)
    for member_id in session.scalars(select(Identity.member_id).where(Identity.member_id.in_(member_ids))):
        counts[member_id] += 1
    return min(member_ids, key=lambda m: (-counts[m], m))


def _evidence(links: list[Link]) -> dict[str, object]:
    return {"links": [{"a": x.a, "b": x.b, "rule": x.rule, "key": x.key} for x in links]}


def _merge_group(session: Session, tenant_id: str, group: Group, actor: str, stats: UnifyStats) -> str:
    if len(group.member_ids) == 1:  # the common case online: a record joining one member, no merge
        return group.member_ids[0]
    survivor = _survivor(session, group.member_ids)
    for absorbed in group.member_ids:
        if absorbed != survivor:
            rules = sorted({x.rule for x in group.links})
            service.merge_members(
                session,
                tenant_id=tenant_id,
                survivor_id=survivor,
                absorbed_id=absorbed,
                rule=",".join(rules),
                evidence=_evidence(group.links),
                actor=actor,
            )
            stats.members_merged += 1
    return survivor


def resolve_records(
    session: Session, *, tenant_id: str, keyring: Keyring, pending: list[PendingRecord], actor: str
) -> UnifyStats:
    """Give every pending record a member: an existing one it shares keys with, or a new one."""
    stats = UnifyStats()
    if not pending:
        return stats
    lookups: dict[str, set[tuple[str, str]]] = defaultdict(set)
    record_keys: dict[str, list[tuple[IdentityKey, str]]] = {}
    for item in pending:
        pairs = [(k, service.identity_lookup(keyring, tenant_id, k)) for k in item.identities]
        record_keys[item.record.id] = pairs
        for key, lookup in pairs:
            lookups[lookup].add((key.kind, key.namespace))
    touched = _touched_members(session, tenant_id, pending, lookups)
    member_nodes, held = _member_nodes(session, tenant_id, touched)
    record_nodes = [
        Node(
            id=p.record.id,
            keys=[key_of(k.kind, k.namespace, lk) for k, lk in record_keys[p.record.id]],
            names=p.names,
            phone_masks=p.phone_masks,
            hints=p.hints,
        )
        for p in pending
    ]
    groups = resolve([*member_nodes, *record_nodes], _separations(session, tenant_id, touched))
    by_record = {p.record.id: p for p in pending}
    # Identities are added after the loop: their members must be inserted first, and without ORM
    # relationships the flush does not know that order.
    new_identities = []
    for group in groups:
        records = [by_record[n] for n in group.node_ids if n in by_record]
        if not records:
            continue
        if group.member_ids:
            member_id = _merge_group(session, tenant_id, group, actor, stats)
            if len(group.member_ids) > 1:  # what the absorbed members held is the survivor's now
                for owners in held.values():
                    if owners & set(group.member_ids):
                        owners.difference_update(group.member_ids)
                        owners.add(member_id)
        else:
            member_id = new_id("mem")
            session.add(Member(id=member_id, tenant_id=tenant_id, status=ACTIVE))
            stats.members_created += 1
        stats.touched.add(member_id)
        node_rules: dict[str, Link] = {}
        for x in group.links:
            node_rules.setdefault(x.b, x)
            node_rules.setdefault(x.a, x)
        for item in records:
            link: Link | None = node_rules.get(item.record.id)
            item.record.member_id = member_id
            item.record.match_rule = link.rule if link else ("existing" if group.member_ids else "new")
            if link and link.rule.startswith("weak:"):
                stats.records_attached_weakly += 1
            for key, lookup in record_keys[item.record.id]:
                slot = (key.kind, key.namespace, lookup)
                owners = held[slot]
                # Held by this member already; or an exclusive key held by a member kept apart by an unmerge.
                if member_id in owners or (owners and key.kind in EXCLUSIVE_KINDS):
                    continue
                owners.add(member_id)
                new_identities.append(
                    service.build_identity(
                        keyring,
                        tenant_id=tenant_id,
                        member_id=member_id,
                        key=key,
                        source=item.record.source,
                        source_record_id=item.record.id,
                        rule=item.record.match_rule,
                        evidence={"key": link.key} if link else {},
                    )
                )
                stats.identities_added += 1
    session.flush()
    session.add_all(new_identities)
    session.flush()
    service.refresh_golden(session, tenant_id=tenant_id, keyring=keyring, member_ids=stats.touched)
    return stats


def unify_all(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    actor: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> UnifyStats:
    """Batch: every active member is a node; groups that span members are merged."""
    stats = UnifyStats()
    member_ids = set(
        session.scalars(select(Member.id).where(Member.tenant_id == tenant_id, Member.status == ACTIVE))
    )
    if progress:
        progress("load", 0, len(member_ids))
    nodes, _ = _member_nodes(session, tenant_id, member_ids)
    account_only = {
        n.id for n in nodes if n.keys and all(k.split("|", 1)[0] in ACCOUNT_KINDS for k in n.keys)
    }
    hints = _hints_of(session, account_only)
    for node in nodes:
        node.hints = hints.get(node.id, [])
    groups = [
        g for g in resolve(nodes, _separations(session, tenant_id, member_ids)) if len(g.member_ids) > 1
    ]
    for done, group in enumerate(groups, 1):
        survivor = _merge_group(session, tenant_id, group, actor, stats)
        stats.touched.add(survivor)
        stats.records_attached_weakly += sum(1 for x in group.links if x.rule.startswith("weak:"))
        if progress:
            progress("merge", done, len(groups))
    session.flush()
    service.refresh_golden(session, tenant_id=tenant_id, keyring=keyring, member_ids=stats.touched)
    return stats


def _hints_of(session: Session, member_ids: Iterable[str]) -> dict[str, list[WeakHint]]:
    found: dict[str, list[WeakHint]] = defaultdict(list)
    for ids in _chunks(sorted(member_ids)):
        for member_id, evidence in session.execute(
            select(SourceRecord.member_id, SourceRecord.evidence).where(SourceRecord.member_id.in_(ids))
        ):
            for by, lookup, pinyin in (evidence or {}).get("hints", []):
                found[member_id or ""].append(WeakHint(by, lookup, pinyin))
    return found

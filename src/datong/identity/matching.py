"""Who is one person: the matching rules, as pure logic over a graph of nodes.

A node is a source record or an existing member, with the identity keys it carries. The same rules
serve the batch (``datong unify``: every member is a node) and the online path (an import chunk plus the
members its keys touch), so the two never disagree. The rules, in order (docs/unification.md):

1. **Exclusive keys join unconditionally**: a unionid, an openid, a card number within its source, a
   Taobao nick or ouid/omid, a JD pin name exactly one account, so every node that carries one is one person.
2. **A shared phone (or e-mail) joins only compatible names.** Two cards with one phone and different
   names are two people (a household); names compare by pinyin, so 張偉, 张伟 and the homophone typo
   章伟 agree. A nameless node joins only when exactly one named group holds the phone.
3. **Weak evidence attaches, never merges.** A group holding only marketplace accounts (nick, pin,
   ouid, omid: no person of its own) is attached to a member when its receiver phone, or masked phone,
   together with the receiver's name in pinyin, points to exactly one anchored group. Otherwise it stays
   apart: a gift, a household or an ambiguous mask must not join two people.

Two members that a person separated (an unmerge) are never joined again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from datong.channels.records import CARD_NO, EMAIL, NICK, OMID, OPENID, OUID, PHONE, PIN, UNIONID

SHARED_KINDS = frozenset({PHONE, EMAIL})
ACCOUNT_KINDS = frozenset({NICK, PIN, OUID, OMID})
EXCLUSIVE_KINDS = frozenset({UNIONID, OPENID, CARD_NO, NICK, PIN, OUID, OMID})
# A phone held by this many differently-named groups is a placeholder (a store's own number typed in
# for walk-in customers), not evidence about anyone.
PLACEHOLDER_NAMED_GROUPS = 5


def key_of(kind: str, namespace: str, lookup: str) -> str:
    return f"{kind}|{namespace}|{lookup}"


def kind_of(key: str) -> str:
    return key.split("|", 1)[0]


@dataclass(frozen=True)
class WeakHint:
    """A receiver's phone (``by`` = "phone": its lookup) or masked phone ("mask": its index), with the
    receiver's name in pinyin."""

    by: str
    lookup: str
    name_pinyin: str | None


@dataclass
class Node:
    id: str
    keys: list[str]
    names: frozenset[str] = frozenset()
    phone_masks: frozenset[str] = frozenset()
    hints: list[WeakHint] = field(default_factory=list)
    member_id: str | None = None  # already assigned to this member


@dataclass(frozen=True)
class Link:
    """Why two nodes are one person: the rule and the key (or hint) that showed it."""

    a: str
    b: str
    rule: str
    key: str


@dataclass
class Group:
    node_ids: list[str]
    member_ids: list[str]  # distinct existing members in the group, oldest id first
    links: list[Link]


class _Groups:
    """Union-find whose roots carry the group's names, members and keys."""

    def __init__(self, nodes: list[Node], separated: set[frozenset[str]]) -> None:
        self.parent = {n.id: n.id for n in nodes}
        self.names = {n.id: set(n.names) for n in nodes}
        self.members = {n.id: {n.member_id} if n.member_id else set() for n in nodes}
        self.kinds = {n.id: {kind_of(k) for k in n.keys} for n in nodes}
        self.masks = {n.id: set(n.phone_masks) for n in nodes}
        self.separated = separated
        self.links: list[Link] = []

    def find(self, node_id: str) -> str:
        root = node_id
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node_id] != root:
            self.parent[node_id], node_id = root, self.parent[node_id]
        return root

    def may_join(self, ra: str, rb: str) -> bool:
        return not any(
            frozenset((x, y)) in self.separated for x in self.members[ra] for y in self.members[rb] if x != y
        )

    def union(self, a: str, b: str, rule: str, key: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb or not self.may_join(ra, rb):
            return False
        if ra > rb:  # the smaller id is the root: results do not depend on input order
            ra, rb = rb, ra
        self.parent[rb] = ra
        for attr in (self.names, self.members, self.kinds, self.masks):
            attr[ra] |= attr.pop(rb)
        self.links.append(Link(a, b, rule, key))
        return True

    def anchored(self, root: str) -> bool:
        return not self.kinds[root] <= ACCOUNT_KINDS


def _join_exclusive(groups: _Groups, by_key: dict[str, list[str]]) -> None:
    for key in sorted(by_key):
        if kind_of(key) in SHARED_KINDS:
            continue
        first, *rest = by_key[key]
        for other in rest:
            groups.union(first, other, f"strong:{kind_of(key)}", key)


def _join_shared(groups: _Groups, by_key: dict[str, list[str]]) -> None:
    for key in sorted(by_key):
        if kind_of(key) not in SHARED_KINDS:
            continue
        holders = sorted({groups.find(n): n for n in by_key[key]}.items())
        named = [(root, node) for root, node in holders if groups.names[root]]
        nameless = [(root, node) for root, node in holders if not groups.names[root]]
        # Greedy over named groups: join a group to the single earlier one it shares a name with.
        partitions: list[tuple[str, str]] = []
        for root, node in named:
            matches = [
                p for p in partitions if groups.names[groups.find(p[0])] & groups.names[groups.find(root)]
            ]
            if len(matches) == 1 and groups.union(matches[0][1], node, f"strong:{kind_of(key)}+name", key):
                continue
            # No shared name, a bridge between several named groups, or a separated pair: stands alone.
            partitions.append((root, node))
        if len(partitions) >= PLACEHOLDER_NAMED_GROUPS:
            continue
        if len(partitions) <= 1:
            anchor = partitions[0][1] if partitions else (nameless[0][1] if nameless else None)
            for _, node in nameless:
                if anchor is not None and node != anchor:
                    groups.union(anchor, node, f"strong:{kind_of(key)}", key)


def _attach_weak(groups: _Groups, nodes: list[Node]) -> None:
    by_phone: dict[str, set[str]] = defaultdict(set)
    by_mask: dict[str, set[str]] = defaultdict(set)
    for node in nodes:
        root = groups.find(node.id)
        if not groups.anchored(root):
            continue
        for key in node.keys:
            if kind_of(key) == PHONE:
                by_phone[key].add(root)
        for mask in node.phone_masks:
            by_mask[mask].add(root)
    hints_by_root: dict[str, list[tuple[str, WeakHint]]] = defaultdict(list)
    for node in nodes:
        root = groups.find(node.id)
        if not groups.anchored(root):
            hints_by_root[root].extend((node.id, hint) for hint in node.hints)
    for root in sorted(hints_by_root):
        candidates: set[str] = set()
        used: list[tuple[str, WeakHint]] = []
        for node_id, hint in hints_by_root[root]:
            if not hint.name_pinyin:
                continue
            pool = (
                by_phone.get(key_of(PHONE, "", hint.lookup), set())
                if hint.by == "phone"
                else by_mask.get(hint.lookup, set())
            )
            found = {c for c in pool if hint.name_pinyin in groups.names[groups.find(c)]}
            if found:
                candidates |= {groups.find(c) for c in found}
                used.append((node_id, hint))
        if len(candidates) == 1 and used:
            target = candidates.pop()
            node_id, hint = used[0]
            groups.union(target, node_id, f"weak:{hint.by}+name_pinyin", f"{hint.by}|{hint.lookup}")


def resolve(nodes: Iterable[Node], separated: set[frozenset[str]] | None = None) -> list[Group]:
    """Group nodes into people. Deterministic: the same nodes in any order give the same groups."""
    ordered = sorted(nodes, key=lambda n: n.id)
    groups = _Groups(ordered, separated or set())
    by_key: dict[str, list[str]] = defaultdict(list)
    for node in ordered:
        for key in node.keys:
            by_key[key].append(node.id)
    _join_exclusive(groups, by_key)
    _join_shared(groups, by_key)
    _attach_weak(groups, ordered)
    members: dict[str, list[str]] = defaultdict(list)
    for node in ordered:
        members[groups.find(node.id)].append(node.id)
    links_by_root: dict[str, list[Link]] = defaultdict(list)
    for link in groups.links:
        links_by_root[groups.find(link.a)].append(link)
    return [
        Group(node_ids=ids, member_ids=sorted(groups.members[root]), links=links_by_root[root])
        for root, ids in sorted(members.items())
    ]

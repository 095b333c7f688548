"""The file importers by kind, behind one call, for the CLI and the import pipeline.

Each kind has a default source name (the label a batch is stored under) — except ``members``,
whose source is the brand's own POS/CRM system and must be named — and says whether its records
carry orders, so the pipeline knows to hand them to the orders domain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from datong.channels.files import FilePath
from datong.channels.jd import parse_jd_orders
from datong.channels.miniprogram import parse_miniprogram_members
from datong.channels.pos import parse_member_export
from datong.channels.records import ParsedRecord
from datong.channels.taobao import parse_tmall_orders
from datong.channels.wechat import parse_wechat_fans

# (path, source, appid, mapping) → records; each spec adapts its importer to this shape.
Opener = Callable[[FilePath, str, str | None, dict[str, str] | None], Iterator[ParsedRecord]]


@dataclass(frozen=True)
class ImporterSpec:
    kind: str
    description: str
    default_source: str | None  # None: the caller must name the source
    carries_orders: bool
    needs_appid: bool
    accepts_mapping: bool
    opener: Opener


def _wechat(
    path: FilePath, source: str, appid: str | None, mapping: dict[str, str] | None
) -> Iterator[ParsedRecord]:
    return parse_wechat_fans(path, source=source, appid=appid or "")


IMPORT_KINDS: dict[str, ImporterSpec] = {
    spec.kind: spec
    for spec in (
        ImporterSpec(
            "tmall-orders",
            "Tmall/Taobao order report (ExportOrderList*.csv)",
            "tmall",
            carries_orders=True,
            needs_appid=False,
            accepts_mapping=False,
            opener=lambda path, source, appid, mapping: parse_tmall_orders(path, source=source),
        ),
        ImporterSpec(
            "jd-orders",
            "JD POP order export",
            "jd",
            carries_orders=True,
            needs_appid=False,
            accepts_mapping=False,
            opener=lambda path, source, appid, mapping: parse_jd_orders(path, source=source),
        ),
        ImporterSpec(
            "wechat-fans",
            "WeChat official-account user-info records (JSON lines or array)",
            "wechat",
            carries_orders=False,
            needs_appid=True,
            accepts_mapping=False,
            opener=_wechat,
        ),
        ImporterSpec(
            "miniprogram-members",
            "mini-program member export (CSV/.xlsx)",
            "miniprogram",
            carries_orders=False,
            needs_appid=False,
            accepts_mapping=False,
            opener=lambda path, source, appid, mapping: parse_miniprogram_members(
                path, source=source, appid=appid
            ),
        ),
        ImporterSpec(
            "members",
            "POS/CRM member export (CSV/.xlsx) with a card-number column",
            None,
            carries_orders=False,
            needs_appid=False,
            accepts_mapping=True,
            opener=lambda path, source, appid, mapping: parse_member_export(
                path, source=source, mapping=mapping
            ),
        ),
    )
}


def importer_spec(kind: str) -> ImporterSpec:
    try:
        return IMPORT_KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown import kind {kind!r}; expected one of: {', '.join(IMPORT_KINDS)}"
        ) from None


def open_importer(
    kind: str,
    path: FilePath,
    *,
    source: str | None = None,
    appid: str | None = None,
    mapping: dict[str, str] | None = None,
) -> Iterator[ParsedRecord]:
    """The records of ``path`` read as ``kind``. Raises ``ValueError`` with a message for the user
    for an unknown kind, a missing source or appid, a mapping where none applies, or a file that is
    not of that kind (checked now, before any row)."""
    spec = importer_spec(kind)
    chosen = (source or "").strip() or spec.default_source
    if chosen is None:
        raise ValueError(f"a source is required for {kind} imports (e.g. --source pos-legacy)")
    if spec.needs_appid and not (appid or "").strip():
        raise ValueError(f"an appid is required for {kind} imports (e.g. --appid wx1234567890abcdef)")
    if mapping and not spec.accepts_mapping:
        raise ValueError(f"a column mapping applies only to member imports, not to {kind}")
    return spec.opener(path, chosen, appid, mapping)

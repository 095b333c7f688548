"""Store POS and CRM systems: the generic member export importer."""

from datong.channels.pos.importer import CANONICAL_FIELDS, parse_member_export

__all__ = ["CANONICAL_FIELDS", "parse_member_export"]

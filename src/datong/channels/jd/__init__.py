"""JD (京东) POP shops: the order export importer."""

from datong.channels.jd.importer import parse_jd_orders

__all__ = ["parse_jd_orders"]

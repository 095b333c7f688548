"""Taobao / Tmall: the order report (订单报表) importer."""

from datong.channels.taobao.importer import parse_tmall_orders

__all__ = ["parse_tmall_orders"]

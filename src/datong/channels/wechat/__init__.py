"""WeChat official account: the fan (user-info) dump importer."""

from datong.channels.wechat.importer import parse_wechat_fans

__all__ = ["parse_wechat_fans"]

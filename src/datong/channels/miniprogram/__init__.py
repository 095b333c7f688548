"""The brand's mini-program: the member export importer."""

from datong.channels.miniprogram.importer import parse_miniprogram_members

__all__ = ["parse_miniprogram_members"]

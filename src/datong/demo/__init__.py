"""Demo data with ground truth (:mod:`datong.demo.generator`) and its evaluator (:mod:`datong.demo.evaluate`).

Names are imported lazily so ``python -m datong.demo.generator`` does not import itself twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datong.demo.generator import DemoFile, DemoManifest, generate_demo, generate_source_records

__all__ = ["DemoFile", "DemoManifest", "generate_demo", "generate_source_records"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from datong.demo import generator

        return getattr(generator, name)
    raise AttributeError(name)

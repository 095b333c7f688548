"""members tables."""

from __future__ import annotations

"""The written rules for guides, as pure functions: what a QR code's scene may be, whether a scan binds a
member to the scanning guide under the brand's policy, and which touch an online order is credited to.

**Binding policies** (``Tenant.settings["guides"]["binding"]``):

- ``first_protected`` (the default): the first guide keeps the member for ``protection_days`` (90 by
  default) after binding; a scan of another guide's code binds the member to that guide only when the
  member has no guide, the protection has run out (a binding made under another policy has none), or
  the current guide has left.
- ``last_scan``: the most recent scan of a guide's code wins.
- ``hq_assigns``: scans never bind; HQ assigns members to guides.

**Attribution** of an order the member places online (mini-program, e-shop, Tmall, JD), looking back at
the member's touches (a scan of a guide's or store's code, the binding, a link or coupon the guide sent):

1. A touch qualifies when it came before the order and the order is no later than ``window_days`` after
   it: the touch's own window when a campaign set one, else the brand's (15 days by default).
2. A qualifying touch with a guide beats one with only a store: the guide is the more specific credit,
   and the guide's store is credited with them.
3. Among guide touches the most recent wins; at the same instant, the member's exclusive guide's touch,
   then the earliest recorded.
4. With no guide touch, the most recent store touch credits the store alone.
5. No qualifying touch: the order is not attributed.

A sale a guide rings up at the POS is credited to that guide directly, with no look-back (``pos_sale``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from datong.core.errors import ValidationFailed

BINDING_POLICIES = ("first_protected", "last_scan", "hq_assigns")
DEFAULT_WINDOW_DAYS = 15
DEFAULT_PROTECTION_DAYS = 90
MAX_WINDOW_DAYS = 365
# WeChat allows 64 characters in scene_str, a WeCom "contact me" state only 30: every scene fits both.
SCENE_MAX = 30
_SCENE = re.compile(r"^[A-Za-z0-9_.-]{1,30}$")
QR_KINDS = ("guide", "store", "campaign", "event")
ONLINE_CHANNELS = frozenset({"tmall", "jd", "miniprogram", "eshop", "wechat"})


@dataclass(frozen=True)
class Policy:
    binding: str = "first_protected"
    protection_days: int = DEFAULT_PROTECTION_DAYS
    window_days: int = DEFAULT_WINDOW_DAYS


def parse_policy(raw: Mapping[str, Any] | None) -> Policy:
    """The brand's guide policy from its settings, checked field by field."""
    raw = raw or {}
    binding = raw.get("binding", "first_protected")
    if binding not in BINDING_POLICIES:
        raise ValidationFailed(f"binding is one of {', '.join(BINDING_POLICIES)}", field="guides.binding")
    days = {}
    for name, default in (("protection_days", DEFAULT_PROTECTION_DAYS), ("window_days", DEFAULT_WINDOW_DAYS)):
        value = raw.get(name, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_WINDOW_DAYS:
            raise ValidationFailed(
                f"{name} is a whole number of days, 1 to {MAX_WINDOW_DAYS}", field=f"guides.{name}"
            )
        days[name] = value
    return Policy(binding, days["protection_days"], days["window_days"])


def check_scene(scene: str) -> str:
    if not _SCENE.match(scene):
        raise ValidationFailed(
            f"a scene is 1 to {SCENE_MAX} letters, digits, '_', '.' or '-' (it must fit a WeCom state)",
            field="scene",
        )
    return scene


@dataclass(frozen=True)
class Binding:
    guide_id: str | None
    protected_until: datetime | None
    guide_active: bool = True


def scan_binds(policy: Policy, current: Binding, scanning_guide_id: str, at: datetime) -> bool:
    """Whether a scan of ``scanning_guide_id``'s code at ``at`` makes them the member's exclusive guide.

    Under ``first_protected`` a binding with no ``protected_until`` is not protected: it was made under
    another policy (``last_scan``, ``hq_assigns``) or by hand, and no protection was ever promised for it.
    """
    if policy.binding == "hq_assigns" or current.guide_id == scanning_guide_id:
        return False
    if policy.binding == "last_scan" or current.guide_id is None or not current.guide_active:
        return True
    return current.protected_until is None or current.protected_until <= at


def protection_end(policy: Policy, at: datetime) -> datetime | None:
    return at + timedelta(days=policy.protection_days) if policy.binding == "first_protected" else None


@dataclass(frozen=True)
class TouchView:
    id: str
    at: datetime
    guide_id: str | None
    store_id: str | None
    window_days: int | None = None


@dataclass(frozen=True)
class Credit:
    touch: TouchView
    rule: str  # last_guide_touch | store_touch
    window_days: int


def window_of(touch: TouchView, default_days: int) -> int:
    return touch.window_days if touch.window_days is not None else default_days


def qualifies(touch: TouchView, order_at: datetime, default_days: int) -> bool:
    return touch.at <= order_at <= touch.at + timedelta(days=window_of(touch, default_days))


def credit_for(
    touches: Sequence[TouchView], order_at: datetime, *, default_days: int, exclusive_guide_id: str | None
) -> Credit | None:
    """Which touch an online order placed at ``order_at`` is credited to (rules 1 to 5 above)."""
    live = [t for t in touches if qualifies(t, order_at, default_days) and (t.guide_id or t.store_id)]
    guided = [t for t in live if t.guide_id]
    if guided:
        # Latest first; at the same instant the exclusive guide's touch, then the earliest recorded.
        order = {t.id: n for n, t in enumerate(touches)}
        best = max(guided, key=lambda t: (t.at, t.guide_id == exclusive_guide_id, -order[t.id]))
        return Credit(best, "last_guide_touch", window_of(best, default_days))
    if live:
        order = {t.id: n for n, t in enumerate(touches)}
        best = max(live, key=lambda t: (t.at, -order[t.id]))
        return Credit(best, "store_touch", window_of(best, default_days))
    return None

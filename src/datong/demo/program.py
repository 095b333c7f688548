"""The demo brand's points program: what a CRM team would write in its program file."""

from __future__ import annotations

from typing import Any

DEMO_PROGRAM: dict[str, Any] = {
    "code": "main",
    "name": "会员积分",
    "points_per_yuan": 1,
    "fen_per_point": 1,
    "expiry": {"policy": "end_of_next_year"},
    "tier_basis": "points",
    "hold_seconds": 900,
    "tiers": [
        {"code": "silver", "name": "银卡会员", "rank": 0, "threshold": 0, "birthday_bonus_points": 50},
        {
            "code": "gold",
            "name": "金卡会员",
            "rank": 1,
            "threshold": 3000,
            "earn_multiplier_pct": 120,
            "birthday_bonus_points": 200,
        },
        {
            "code": "diamond",
            "name": "钻石会员",
            "rank": 2,
            "threshold": 10000,
            "earn_multiplier_pct": 150,
            "birthday_bonus_points": 500,
        },
    ],
    "earn_rules": [
        {"code": "mini-x2", "name": "小程序下单双倍积分", "channels": ["miniprogram"], "multiplier_pct": 200},
        {"code": "basket-500", "name": "单笔满500元送100积分", "min_spend_fen": 50000, "bonus_points": 100},
    ],
    "rewards": [
        {"code": "tote-bag", "name": "品牌帆布袋", "kind": "gift", "points_cost": 800},
        {"code": "socks", "name": "运动袜两双装", "kind": "gift", "points_cost": 300},
    ],
}

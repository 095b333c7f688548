"""Roles, scopes and what each may do. Pure logic: the API and the services ask these questions."""

from __future__ import annotations

from dataclasses import dataclass, field

HQ_ADMIN = "hq_admin"
HQ_OPERATOR = "hq_operator"
AGENT_MANAGER = "agent_manager"
STORE_MANAGER = "store_manager"
GUIDE = "guide"
ROLES = (HQ_ADMIN, HQ_OPERATOR, AGENT_MANAGER, STORE_MANAGER, GUIDE)
HQ_ROLES = frozenset({HQ_ADMIN, HQ_OPERATOR})

# What each permission allows; a user role or an API key's scopes grant a set of them.
MEMBERS_READ = "members:read"
MEMBERS_WRITE = "members:write"
MEMBERS_MERGE = "members:merge"
MEMBERS_UNMASK = "members:unmask"
MEMBERS_EXPORT = "members:export"
MEMBERS_DELETE = "members:delete"
IMPORTS_WRITE = "imports:write"
IMPORTS_READ = "imports:read"
ORG_READ = "org:read"
ORG_WRITE = "org:write"
USERS_ADMIN = "users:admin"
AUDIT_READ = "audit:read"
POINTS_READ = "points:read"
POINTS_WRITE = "points:write"  # earn, redeem, hold, refund: what a POS does
POINTS_ADJUST = "points:adjust"  # manual corrections, audited
POINTS_SETTLE = "points:settle"  # clearing between owners
COUPONS_READ = "coupons:read"  # a member's coupons
COUPONS_WRITE = "coupons:write"  # issue, validate, redeem (核销), reverse: what a POS does
COUPONS_ADMIN = "coupons:admin"  # templates
GUIDES_READ = "guides:read"  # QR codes, KPIs, commission statements (scoped to the caller's guides)
GUIDES_WRITE = "guides:write"  # make QR codes, record a touch (a link or coupon a guide sent)
GUIDES_ADMIN = "guides:admin"  # assign members, hand over a leaving guide's members, commission adjustments
SCOPES = (
    MEMBERS_READ,
    MEMBERS_WRITE,
    MEMBERS_MERGE,
    MEMBERS_UNMASK,
    MEMBERS_EXPORT,
    MEMBERS_DELETE,
    IMPORTS_WRITE,
    IMPORTS_READ,
    ORG_READ,
    ORG_WRITE,
    USERS_ADMIN,
    AUDIT_READ,
    POINTS_READ,
    POINTS_WRITE,
    POINTS_ADJUST,
    POINTS_SETTLE,
    COUPONS_READ,
    COUPONS_WRITE,
    COUPONS_ADMIN,
    GUIDES_READ,
    GUIDES_WRITE,
    GUIDES_ADMIN,
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    HQ_ADMIN: frozenset(SCOPES),
    HQ_OPERATOR: frozenset(
        {
            MEMBERS_READ,
            MEMBERS_WRITE,
            MEMBERS_MERGE,
            IMPORTS_WRITE,
            IMPORTS_READ,
            ORG_READ,
            MEMBERS_EXPORT,
            POINTS_READ,
            POINTS_WRITE,
            POINTS_SETTLE,
            COUPONS_READ,
            COUPONS_WRITE,
            COUPONS_ADMIN,
            GUIDES_READ,
            GUIDES_WRITE,
            GUIDES_ADMIN,
        }
    ),
    AGENT_MANAGER: frozenset(
        {
            MEMBERS_READ,
            MEMBERS_WRITE,
            ORG_READ,
            POINTS_READ,
            POINTS_WRITE,
            COUPONS_READ,
            COUPONS_WRITE,
            GUIDES_READ,
            GUIDES_WRITE,
        }
    ),
    STORE_MANAGER: frozenset(
        {
            MEMBERS_READ,
            MEMBERS_WRITE,
            ORG_READ,
            POINTS_READ,
            POINTS_WRITE,
            COUPONS_READ,
            COUPONS_WRITE,
            GUIDES_READ,
            GUIDES_WRITE,
        }
    ),
    GUIDE: frozenset({MEMBERS_READ, ORG_READ, POINTS_READ, COUPONS_READ, GUIDES_READ, GUIDES_WRITE}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user with a role, or a system with an API key's scopes."""

    tenant_id: str
    kind: str  # "user" | "api_key" | "system"
    id: str
    role: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    agent_id: str | None = None
    store_id: str | None = None
    guide_id: str | None = None
    # The stores an agent manager or store manager may see (resolved at login from the org).
    store_ids: frozenset[str] | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def store_scope(self) -> frozenset[str] | None:
        """The stores this caller may act at (sell, redeem, refund), or None for every store."""
        if self.sees_all_members:
            return None
        return self.store_ids or frozenset()

    @property
    def sees_all_members(self) -> bool:
        """HQ roles and brand-wide systems see every member; scoped roles see their own."""
        return self.role in HQ_ROLES or (self.kind != "user" and self.store_id is None)


def system_principal(tenant_id: str, name: str = "cli") -> Principal:
    return Principal(tenant_id=tenant_id, kind="system", id=name, permissions=frozenset(SCOPES))

"""Two brands with every role, for the API tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy import update

from datong.api.app import create_app
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.members.models import Member
from datong.org.models import Guide, Store
from datong.org.service import load_org
from datong.tenancy.service import create_api_key, create_tenant, create_user

PASSWORD = "correct horse battery"
ORG = {
    "regions": [{"code": "SC", "name": "华南"}],
    "agents": [
        {"code": "AG1", "name": "一号代理", "region_code": "SC"},
        {"code": "AG2", "name": "二号代理", "region_code": "SC"},
    ],
    "stores": [
        {"code": "D1", "name": "直营店", "kind": "direct", "city": "深圳市"},
        {
            "code": "F1",
            "name": "加盟一店",
            "kind": "franchise",
            "agent_code": "AG1",
            "guides": [{"code": "G1", "name": "导购甲"}],
        },
        {"code": "F2", "name": "加盟二店", "kind": "franchise", "agent_code": "AG1"},
        {"code": "F3", "name": "加盟三店", "kind": "franchise", "agent_code": "AG2"},
    ],
}


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)  # caller name → bearer token
    members: dict[str, str] = field(default_factory=dict)  # name → member id
    stores: dict[str, str] = field(default_factory=dict)

    def headers(self, caller: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        return {"Authorization": f"Bearer {token}"} if token else {}


def _brand(db: Database, code: str, world: World, prefix: str) -> str:
    with db.unit_of_work() as s:
        tenant = create_tenant(s, code=code, name=code)
        load_org(s, tenant_id=tenant.id, actor="system:test", data=ORG)
        stores = {st.code: st for st in s.query(Store).filter(Store.tenant_id == tenant.id)}
        guide = s.query(Guide).filter(Guide.tenant_id == tenant.id).one()
        for code_, store in stores.items():
            world.stores[f"{prefix}{code_}"] = store.id
        users = [
            ("admin", "hq_admin", {}),
            ("operator", "hq_operator", {}),
            ("agent", "agent_manager", {"agent_id": stores["F1"].agent_id}),
            ("store", "store_manager", {"store_id": stores["F1"].id}),
            ("guide", "guide", {"guide_id": guide.id}),
        ]
        for name, role, scope in users:
            create_user(s, tenant_id=tenant.id, username=name, password=PASSWORD, role=role, **scope)
        world.tokens[f"{prefix}pos_key"] = create_api_key(
            s, tenant_id=tenant.id, name="pos", scopes=["members:read", "members:write"]
        )[0]
        world.tokens[f"{prefix}store_key"] = create_api_key(
            s,
            tenant_id=tenant.id,
            name="f1 pos",
            scopes=["members:read", "members:write"],
            store_id=stores["F1"].id,
        )[0]
    for name in ("admin", "operator", "agent", "store", "guide"):
        answer = world.client.post(
            "/api/v1/auth/login", json={"tenant": code, "username": name, "password": PASSWORD}
        )
        assert answer.status_code == 200, answer.text
        world.tokens[f"{prefix}{name}"] = answer.json()["token"]
    return guide.id


def build_world(db: Database, keyring: Keyring) -> World:
    app = create_app(Runtime(settings=Settings(database_url=db.url), db=db, keyring=keyring))
    world = World(client=TestClient(app))
    guide_a = _brand(db, "brand-a", world, "")
    _brand(db, "brand-b", world, "b_")
    people = [
        ("in_f1", "F1", "13800000001", "王一"),
        ("in_f3", "F3", "13800000003", "王三"),
        ("bound", "F2", "13800000004", "王四"),
        ("spare", "D1", "13800000005", "王五"),
    ]
    for name, store, phone, person in people:
        answer = world.client.post(
            "/api/v1/members/register",
            headers={**world.headers("admin"), "Idempotency-Key": name},
            json={"source": "pos_test", "card_no": name, "phone": phone, "name": person, "store_code": store},
        )
        assert answer.status_code == 201, answer.text
        world.members[name] = answer.json()["member_id"]
    answer = world.client.post(
        "/api/v1/members/register",
        headers={**world.headers("b_admin"), "Idempotency-Key": "b"},
        json={
            "source": "pos_test",
            "card_no": "other",
            "phone": "13800000009",
            "name": "李九",
            "store_code": "F1",
        },
    )
    world.members["other_brand"] = answer.json()["member_id"]
    with db.unit_of_work() as s:  # binding to a guide is a later feature; set it directly
        s.execute(update(Member).where(Member.id == world.members["bound"]).values(guide_id=guide_a))
    return world

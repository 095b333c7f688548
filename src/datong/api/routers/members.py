"""Member endpoints: register or bind, look up, view, explain, merge, unmerge, consent, PIPL export, erase."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from datong.api.deps import PrincipalDep, RuntimeDep, SessionDep
from datong.api.idempotency import run_once
from datong.channels.registration import Registration, register_member
from datong.core.masking import mask_name
from datong.members import queries, service
from datong.members.schemas import ConsentIn, DeleteIn, MergeIn, RegisterIn, RegisterOut, UnmergeIn
from datong.tenancy import rules
from datong.tenancy.service import audit

router = APIRouter(prefix="/api/v1/members", tags=["members"])


@router.post("/register", response_model=RegisterOut)
def register(
    body: RegisterIn,
    s: SessionDep,
    p: PrincipalDep,
    rt: RuntimeDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Register a person from a POS or the mini-program, or bind a new account to the member they are."""
    queries.require(p, rules.MEMBERS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        reg = Registration(
            **body.model_dump(exclude={"consents"}), consents=[c.model_dump() for c in body.consents]
        )
        member_id, created = register_member(
            s, tenant_id=p.tenant_id, keyring=rt.keyring, actor=p.label, registration=reg
        )
        audit(
            s,
            tenant_id=p.tenant_id,
            actor=p.label,
            action="member.register",
            object_type="member",
            object_id=member_id,
            detail={"source": body.source, "created": created},
        )
        return (201 if created else 200), {"member_id": member_id, "created": created}

    status, answer = run_once(s, p, idempotency_key, body.model_dump(mode="json"), act)
    response.status_code = status
    return answer


@router.get("/lookup")
def lookup(
    s: SessionDep, p: PrincipalDep, rt: RuntimeDep, kind: str, value: str, namespace: str = ""
) -> list[dict[str, Any]]:
    """Find members by phone, unionid, openid (namespace = appid), card (namespace = source), nick or pin."""
    queries.require(p, rules.MEMBERS_READ)
    found = queries.lookup_members(s, p, rt.keyring, kind=kind, value=value, namespace=namespace)
    return [
        {
            "id": m.id,
            "name": mask_name(m.name) if m.name else None,
            "city": m.city,
            "home_store_id": m.home_store_id,
        }
        for m in found
    ]


@router.get("/{member_id}")
def view(
    member_id: str,
    s: SessionDep,
    p: PrincipalDep,
    rt: RuntimeDep,
    unmask: Annotated[bool, Query(description="plaintext personal data; audited")] = False,
) -> dict[str, Any]:
    queries.require(p, rules.MEMBERS_READ)
    member = queries.get_member_for(s, p, member_id)
    result = queries.member_view(s, p, rt.keyring, member, unmask=unmask)
    if result["unmasked"]:
        audit(
            s,
            tenant_id=p.tenant_id,
            actor=p.label,
            action="member.view_unmasked",
            object_type="member",
            object_id=member.id,
        )
    return result


@router.get("/{member_id}/explain")
def explain(member_id: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    queries.require(p, rules.MEMBERS_READ)
    member = queries.get_member_for(s, p, member_id)
    return queries.explain(s, rt.keyring, tenant_id=p.tenant_id, member_id=member.id)


@router.post("/merge")
def merge(body: MergeIn, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    queries.require(p, rules.MEMBERS_MERGE)
    for member_id in (body.survivor_id, body.absorbed_id):
        queries.get_member_for(s, p, member_id)
    event = service.merge_members(
        s,
        tenant_id=p.tenant_id,
        survivor_id=body.survivor_id,
        absorbed_id=body.absorbed_id,
        rule="manual",
        evidence={"reason": body.reason},
        actor=p.label,
    )
    return {"merge_id": event.id, "survivor_id": event.survivor_id, "absorbed_id": event.absorbed_id}


@router.post("/merges/{merge_id}/undo")
def unmerge(merge_id: str, body: UnmergeIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    queries.require(p, rules.MEMBERS_MERGE)
    event = service.unmerge(
        s, tenant_id=p.tenant_id, keyring=rt.keyring, merge_id=merge_id, actor=p.label, reason=body.reason
    )
    return {"merge_id": event.id, "restored_member_id": event.absorbed_id, "survivor_id": event.survivor_id}


@router.post("/{member_id}/consents", status_code=201)
def consent(member_id: str, body: ConsentIn, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    queries.require(p, rules.MEMBERS_WRITE)
    member = queries.get_member_for(s, p, member_id)
    row = service.record_consent(
        s,
        tenant_id=p.tenant_id,
        member_id=member.id,
        purpose=body.purpose,
        granted=body.granted,
        channel=body.channel or p.label,
        text_version=body.text_version,
        actor=p.label,
    )
    return {"id": row.id, "purpose": row.purpose, "granted": row.granted, "at": row.at.isoformat()}


@router.get("/{member_id}/export")
def export(member_id: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """A copy of everything held about the person (PIPL art. 45): audited. The raw rows are personal data
    in plaintext, so only a caller who may unmask receives them."""
    queries.require(p, rules.MEMBERS_EXPORT)
    member = queries.get_member_for(s, p, member_id)
    unmask = p.can(rules.MEMBERS_UNMASK)
    view_ = queries.member_view(s, p, rt.keyring, member, unmask=unmask)
    view_["records"] = queries.member_records(s, rt.keyring, member.id, include_raw=unmask)
    audit(
        s,
        tenant_id=p.tenant_id,
        actor=p.label,
        action="member.export",
        object_type="member",
        object_id=member.id,
    )
    return view_


@router.post("/{member_id}/delete")
def delete(member_id: str, body: DeleteIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """Erase the person's data (PIPL art. 47). Orders stay for the books, tied to no one."""
    queries.require(p, rules.MEMBERS_DELETE)
    member = queries.get_member_for(s, p, member_id)
    service.delete_member(
        s, tenant_id=p.tenant_id, keyring=rt.keyring, member_id=member.id, actor=p.label, reason=body.reason
    )
    return {"member_id": member.id, "status": "deleted"}

"""Evidence uploads, shared by the apply, supplement and appeal flows: limits from the config,
duplicates dropped by file_unique_id, a live checklist, a reason for every refusal."""

from __future__ import annotations

from typing import Any

from bot.dialogue._common import STEPS, stored_quote
from bot.domain import Evidence, EvidenceRequirement
from bot.engine import Turn

MB = 1024 * 1024


def requirement(turn: Turn) -> EvidenceRequirement:
    """The evidence rule of the application or ticket the customer is working on."""
    if "quote" in turn.data and turn.conv.flow == "apply":
        return stored_quote(turn).evidence
    ticket = turn.uow.ticket(str(turn.data.get("ticket_no", "")))
    if ticket is None:
        raise LookupError("no application or ticket in this conversation")
    return ticket.quote.evidence


def collected(turn: Turn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = turn.data.setdefault("evidence", [])
    return items


def kinds_text(turn: Turn, req: EvidenceRequirement) -> str:
    return turn.t("evidence.separator").join(
        turn.t(f"evidence.kind.{k.value}") for k in req.allowed_kinds
    )


@STEPS.action("add_evidence")
def add_evidence(turn: Turn) -> None:
    req = requirement(turn)
    items = collected(turn)
    # the same file twice: Telegram's id for its bytes, or their hash when the bytes were read
    known = {e["file_unique_id"] for e in items} | {e["sha256"] for e in items if e.get("sha256")}
    if turn.conv.flow != "apply" and "ticket_no" in turn.data:
        for e in turn.uow.evidence_of(str(turn.data["ticket_no"])):
            known |= {e.file_unique_id, e.sha256} - {None}
    accepted = 0
    over: list[str] = []  # past the limit: one message for all of them (an album of 20)
    for f in turn.event.files:
        name = f.file_name or turn.t(f"evidence.kind.{f.kind.value}")
        if f.kind not in req.allowed_kinds:
            turn.say("evidence.error.type", name=name, allowed=kinds_text(turn, req))
        elif f.content_ok is False:
            turn.say("evidence.error.content", name=name, allowed=kinds_text(turn, req))
        elif f.size_bytes > req.max_size_bytes:
            turn.say("evidence.error.size", name=name, max_mb=req.max_size_bytes // MB)
        elif f.file_unique_id in known or (f.sha256 is not None and f.sha256 in known):
            turn.say("evidence.error.duplicate", name=name)
        elif len(items) >= req.max_files:
            over.append(name)
        else:
            evidence = Evidence(
                kind=f.kind,
                file_id=f.file_id,
                file_unique_id=f.file_unique_id,
                size_bytes=f.size_bytes,
                mime_type=f.mime_type,
                caption=f.caption,
                sha256=f.sha256,
                added_at=turn.now,
                sent_as=f.sent_as,
            )
            items.append(evidence.model_dump(mode="json"))
            known |= {f.file_unique_id, f.sha256} - {None}
            accepted += 1
    if len(over) == 1:
        turn.say("evidence.error.too_many", name=over[0], max=req.max_files)
    elif over:
        turn.say("evidence.error.too_many_several", count=len(over), max=req.max_files)
    if accepted:
        turn.say("evidence.accepted", count=accepted, total=len(items))


def checklist(turn: Turn, req: EvidenceRequirement) -> dict[str, Any]:
    """Parameters of the live checklist: how many, how many more, the limits."""
    have = len(collected(turn))
    missing = max(req.min_count - have, 0)
    status = (
        turn.t("evidence.still_needed", missing=missing) if missing else turn.t("evidence.enough")
    )
    return {
        "have": have,
        "min": req.min_count,
        "max": req.max_files,
        "max_mb": req.max_size_bytes // MB,
        "kinds": kinds_text(turn, req),
        "status": status,
        "hint": turn.t(req.hint_key),
    }


def stored_evidence(turn: Turn) -> list[Evidence]:
    return [Evidence.model_validate(e) for e in collected(turn)]

"""Evidence uploads: type, size and count limits, duplicates, albums, the live checklist."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.domain import EvidenceKind
from bot.engine import Kind
from bot.orders_import import import_orders
from tests.engine.conftest import Chat, demo_orders, file_info, test_config

MB = 1024 * 1024


@pytest.fixture
def uploading(chat: Chat) -> Chat:
    """At the evidence step of a service issue (at least one file, at most 9, photo or PDF)."""
    chat.link()
    chat.press("申请退款")
    chat.press("力健")
    chat.press("服务未达标")
    chat.press("权益缺失")
    chat.press("继续申请")
    assert chat.state == "apply.evidence"
    return chat


def collected(app: App, chat: Chat) -> list[str]:
    conv = app.engine.conversation(chat.key)
    assert conv is not None
    return [e["file_unique_id"] for e in conv.data.get("evidence", [])]


def keys(chat: Chat) -> list[str]:
    return [r.key for r in chat.last.replies]


def test_the_checklist_shows_what_is_still_needed(uploading: Chat) -> None:
    assert "已上传 0 份,至少 1 份,最多 9 份" in uploading.text
    assert "支持 照片、PDF,单个不超过 20MB" in uploading.text
    assert "还需要至少 1 份" in uploading.text
    uploading.photo("one")
    assert keys(uploading) == ["evidence.accepted", "apply.evidence"]
    assert "已上传 1 份" in uploading.text and "凭证已足够" in uploading.text


def test_done_before_the_minimum_is_refused(uploading: Chat, app: App) -> None:
    uploading.press("上传完成")
    assert uploading.state == "apply.evidence"
    assert keys(uploading)[0] == "evidence.error.not_enough"
    assert "还差 1 份" in uploading.text
    assert collected(app, uploading) == []


def test_an_album_is_several_files_in_one_event(uploading: Chat, app: App) -> None:
    uploading.send(
        Kind.FILE, files=(file_info("a"), file_info("b"), file_info("c", kind=EvidenceKind.PDF))
    )
    assert "已收到 3 份,共 3 份" in uploading.text
    assert collected(app, uploading) == ["uid-a", "uid-b", "uid-c"]
    uploading.press("上传完成")
    assert uploading.state == "apply.amount"


def test_files_past_the_limit_get_one_message_for_the_album(uploading: Chat, app: App) -> None:
    max_files = app.config.policy.evidence.default.max_files
    uploading.send(Kind.FILE, files=tuple(file_info(f"f{i}") for i in range(max_files + 11)))
    assert keys(uploading).count("evidence.error.too_many_several") == 1
    assert "evidence.error.too_many" not in keys(uploading)
    assert f"最多只能上传 {max_files} 份,超出的 11 份未保存" in uploading.text
    assert len(collected(app, uploading)) == max_files
    uploading.photo("one-more")
    assert keys(uploading)[0] == "evidence.error.too_many"
    assert len(collected(app, uploading)) == max_files


def test_a_file_too_big_is_refused(uploading: Chat, app: App) -> None:
    uploading.photo("huge", size=20 * MB + 1)
    assert keys(uploading)[0] == "evidence.error.size"
    assert "超过 20MB" in uploading.text
    uploading.photo("just-fits", size=20 * MB)
    assert collected(app, uploading) == ["uid-just-fits"]


@pytest.mark.parametrize("kind", [EvidenceKind.VIDEO, EvidenceKind.DOCUMENT])
def test_a_type_not_allowed_is_refused_with_the_allowed_ones(
    uploading: Chat, app: App, kind: EvidenceKind
) -> None:
    uploading.photo("clip", kind=kind)
    assert keys(uploading)[0] == "evidence.error.type"
    assert "请上传 照片、PDF" in uploading.text
    assert collected(app, uploading) == []


def test_the_same_file_twice_is_kept_once(uploading: Chat, app: App) -> None:
    uploading.photo("same")
    uploading.photo("same")
    assert keys(uploading)[0] == "evidence.error.duplicate"
    assert collected(app, uploading) == ["uid-same"]
    # within one album as well
    uploading.send(Kind.FILE, files=(file_info("twin"), file_info("twin")))
    assert keys(uploading)[:2] == ["evidence.error.duplicate", "evidence.accepted"]
    assert collected(app, uploading) == ["uid-same", "uid-twin"]


def test_a_mixed_album_keeps_the_good_files_and_names_the_bad(uploading: Chat, app: App) -> None:
    uploading.send(
        Kind.FILE,
        files=(
            file_info("ok"),
            file_info("clip", kind=EvidenceKind.VIDEO),
            file_info("huge", size=21 * MB),
        ),
    )
    assert keys(uploading) == [
        "evidence.error.type",
        "evidence.error.size",
        "evidence.accepted",
        "apply.evidence",
    ]
    assert collected(app, uploading) == ["uid-ok"]


def test_an_empty_file_event_changes_nothing(uploading: Chat, app: App) -> None:
    uploading.send(Kind.FILE, files=())
    assert uploading.state == "apply.evidence"
    assert collected(app, uploading) == []


def test_files_are_attached_to_the_ticket_only_when_it_is_submitted(
    uploading: Chat, app: App
) -> None:
    uploading.photo("p1")
    uploading.send(Kind.FILE, files=(file_info("p2", kind=EvidenceKind.PDF),))
    uploading.press("上传完成")
    uploading.press("全额")
    assert "凭证:2 份" in uploading.text
    uploading.press("确认提交")
    (ticket,) = uploading.tickets()
    with app.store.unit_of_work() as uow:
        stored = uow.evidence_of(ticket.ticket_no)
    assert [(e.kind, e.file_unique_id) for e in stored] == [
        (EvidenceKind.PHOTO, "uid-p1"),
        (EvidenceKind.PDF, "uid-p2"),
    ]
    assert collected(app, uploading) == []


def test_cancelling_drops_the_collected_files(uploading: Chat, app: App) -> None:
    uploading.photo("p1")
    uploading.command("cancel")
    assert uploading.state == "menu.main"
    assert collected(app, uploading) == []


def test_limits_come_from_the_config(tmp_path: Path, clock: FixedClock) -> None:
    config = test_config(
        tmp_path,
        policy={"evidence": {"rules": {"service_issue": {"min_count": 2, "max_files": 3}}}},
    )
    app = build_app(config, clock=clock)
    try:
        import_orders(app.store, demo_orders())
        chat = Chat(app)
        chat.link()
        chat.press("申请退款")
        chat.press("力健")
        chat.press("服务未达标")
        chat.press("内容与描述不符")
        chat.press("继续申请")
        assert "至少 2 份,最多 3 份" in chat.text
        chat.photo("1")
        chat.press("上传完成")
        assert chat.last.replies[0].key == "evidence.error.not_enough"
        chat.send(Kind.FILE, files=tuple(file_info(f"x{i}") for i in range(4)))
        assert "最多只能上传 3 份" in chat.text
        chat.press("上传完成")
        assert chat.state == "apply.amount"
    finally:
        app.close()

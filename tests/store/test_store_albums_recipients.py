"""Store contract: album parts waiting to be handed over (any process may collect a chat's album)
and the per-recipient reply-keyboard flag read and written on the outbox lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.store import AlbumPart, ConversationKey, OutboxMessage, Store

if TYPE_CHECKING:
    from conftest import OpenStore

AT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def part(update_id: int, chat: str = "1001", group: str = "g1", at: datetime = AT) -> AlbumPart:
    return AlbumPart(
        channel="telegram",
        chat=chat,
        group_id=group,
        update_id=update_id,
        dedupe_key=f"tg:{update_id}",
        payload=f'{{"update_id": {update_id}, "文件": "照片"}}',
        received_at=at,
    )


# --- album parts -----------------------------------------------------------------------------


def test_parts_round_trip_by_update_id_per_chat(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.pending_album("telegram", "1001") is None
        assert uow.album_parts("telegram", "1001") == []
        assert uow.add_album_part(part(12)) is True
        assert uow.add_album_part(part(11)) is True
        assert uow.add_album_part(part(13, chat="2002", group="g2")) is True
    with store.unit_of_work() as uow:
        assert uow.album_parts("telegram", "1001") == [part(11), part(12)]
        assert uow.album_parts("telegram", "2002") == [part(13, chat="2002", group="g2")]
        assert uow.album_parts("console", "1001") == []  # another channel
        assert uow.pending_album("telegram", "1001") == "g1"
        assert uow.pending_album("telegram", "2002") == "g2"
        assert uow.pending_album("telegram", "3003") is None
        stored = uow.album_parts("telegram", "1001")[0].received_at
    assert stored == AT and stored.utcoffset() == timedelta(0)


def test_the_pending_album_is_the_group_of_the_oldest_part(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.add_album_part(part(21, group="later"))
        uow.add_album_part(part(20, group="earlier"))
        assert uow.pending_album("telegram", "1001") == "earlier"


def test_a_turn_start_sees_the_chats_waiting_album_and_the_turns_own_changes(
    store: Store,
) -> None:
    """mark_processed_and_read may read the chat's waiting album with the conversation: what
    pending_album answers after it is what the database holds, then this unit of work's own
    additions and drops."""
    chat = ConversationKey("telegram", "1001")
    with store.unit_of_work() as uow:
        uow.add_album_part(part(31, group="first"))
    with store.unit_of_work() as uow:
        assert uow.mark_processed_and_read("tg:40", AT, chat) == (True, None)
        assert uow.pending_album("telegram", "1001") == "first"
        assert uow.drop_album_parts("telegram", [31], AT) == 1
        assert uow.pending_album("telegram", "1001") is None
        assert uow.add_album_part(part(30, group="older")) is True
        assert uow.pending_album("telegram", "1001") == "older"
    with store.unit_of_work() as uow:
        assert uow.mark_processed_and_read("tg:41", AT, chat) == (True, None)
        assert uow.pending_album("telegram", "1001") == "older"
        assert uow.pending_album("telegram", "2002") is None  # another chat: read as ever
    with store.unit_of_work() as uow:
        assert uow.mark_processed_and_read("tg:42", AT, ConversationKey("telegram", "2002"))
        assert uow.pending_album("telegram", "2002") is None
        assert uow.pending_album("telegram", "1001") == "older"


def test_a_part_stored_twice_is_stored_once_and_still_waits(
    store: Store, open_store: OpenStore
) -> None:
    with store.unit_of_work() as uow:
        assert uow.add_album_part(part(30)) is True
    with open_store().unit_of_work() as uow:  # another worker got it again
        assert uow.add_album_part(part(30)) is True
        assert uow.album_parts("telegram", "1001") == [part(30)]


def test_a_part_of_an_update_already_handled_is_not_stored(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.mark_processed("tg:40", AT)
        assert uow.add_album_part(part(40)) is False
        assert uow.album_parts("telegram", "1001") == []


def test_dropping_parts_records_their_keys_and_keeps_the_others(store: Store) -> None:
    with store.unit_of_work() as uow:
        for update_id in (50, 51, 52):
            uow.add_album_part(part(update_id))
        uow.mark_processed("tg:50", AT)  # the album's turn recorded its first part's key
        assert uow.drop_album_parts("telegram", [50, 51], AT) == 2
        assert uow.drop_album_parts("telegram", [], AT) == 0  # nothing to drop
    with store.unit_of_work() as uow:
        assert uow.album_parts("telegram", "1001") == [part(52)]
        assert uow.mark_processed("tg:51", AT) is False  # recorded by the drop
        assert uow.mark_processed("tg:52", AT) is True  # not dropped: not recorded
        # a redelivered part of the album handed over changes nothing
        assert uow.add_album_part(part(51)) is False
        assert uow.album_parts("telegram", "1001") == [part(52)]


def test_a_drop_counts_only_the_parts_still_waiting(store: Store) -> None:
    """Another worker handed some of the parts over meanwhile: the count tells the album's turn
    that what it read is stale."""
    with store.unit_of_work() as uow:
        for update_id in (70, 71, 72):
            uow.add_album_part(part(update_id))
    with store.unit_of_work() as uow:
        assert uow.drop_album_parts("telegram", [71, 72], AT) == 2
    with store.unit_of_work() as uow:
        assert uow.drop_album_parts("telegram", [70, 71, 72], AT) == 1
        assert uow.album_parts("telegram", "1001") == []


def test_a_rolled_back_drop_leaves_the_parts_waiting(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.add_album_part(part(60))
    try:
        with store.unit_of_work() as uow:
            uow.drop_album_parts("telegram", [60], AT)
            raise RuntimeError("the album's turn failed")
    except RuntimeError:
        pass
    with store.unit_of_work() as uow:
        assert uow.album_parts("telegram", "1001") == [part(60)]
        assert uow.mark_processed("tg:60", AT) is True


def test_idle_albums_are_the_chats_whose_latest_part_is_older(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.add_album_part(part(70, chat="1001", at=AT))
        uow.add_album_part(part(71, chat="1001", at=AT + timedelta(seconds=5)))
        uow.add_album_part(part(72, chat="2002", at=AT + timedelta(seconds=1)))
        uow.add_album_part(part(69, chat="3003", at=AT))
    with store.unit_of_work() as uow:
        assert uow.idle_albums("telegram", AT) == []
        # 1001's latest part is at +5 s: still being collected at +3 s
        assert uow.idle_albums("telegram", AT + timedelta(seconds=3)) == ["3003", "2002"]
        after = AT + timedelta(seconds=6)
        assert uow.idle_albums("telegram", after) == ["3003", "1001", "2002"]
        assert uow.idle_albums("console", after) == []


# --- the reply-keyboard flag -----------------------------------------------------------------


def _queue(store: Store, recipient: str, n: int = 1) -> None:
    with store.unit_of_work() as uow:
        for i in range(n):
            uow.enqueue(OutboxMessage("telegram", recipient, {"key": f"k{i}"}, created_at=AT))


def test_the_flag_is_read_with_the_pending_messages_and_only_then(store: Store) -> None:
    with store.lease("outbox:telegram:1001") as lease:
        assert lease is not None
        assert lease.open_recipient(10, "telegram", "1001") == ([], False)
        lease.set_reply_keyboard("telegram", "1001", True)
        assert lease.open_recipient(10, "telegram", "1001") == ([], False)  # nothing pending
    _queue(store, "1001", 3)
    _queue(store, "2002")
    with store.lease("outbox:telegram:1001") as lease:
        assert lease is not None
        pending, shown = lease.open_recipient(2, "telegram", "1001")
        assert [m.payload["key"] for m in pending] == ["k0", "k1"] and shown is True
        pending, shown = lease.open_recipient(10, "telegram", "2002")
        assert len(pending) == 1 and shown is False  # another recipient
        pending, shown = lease.open_recipient(10, "console", "1001")
        assert pending == [] and shown is False
        lease.set_reply_keyboard("telegram", "1001", False)
        assert lease.open_recipient(10, "telegram", "1001")[1] is False
        lease.set_reply_keyboard("telegram", "1001", False)  # twice: harmless
        lease.set_reply_keyboard("telegram", "1001", True)
        lease.set_reply_keyboard("telegram", "1001", True)
    with store.unit_of_work() as uow:
        assert uow.open_recipient(10, "telegram", "1001")[1] is True


def test_the_flag_set_on_a_lease_is_seen_by_another_store_and_after_a_reopen(
    store: Store, open_store: OpenStore
) -> None:
    _queue(store, "1001")
    with store.lease("outbox:telegram:1001") as lease:
        assert lease is not None
        lease.set_reply_keyboard("telegram", "1001", True)
    store.close()
    with open_store().lease("outbox:telegram:1001") as lease:
        assert lease is not None
        assert lease.open_recipient(10, "telegram", "1001")[1] is True

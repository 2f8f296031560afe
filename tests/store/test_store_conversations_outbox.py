"""Store contract: conversations (versions, reminders), processed updates and the outbox."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import SHANGHAI
from bot.store import (
    ConcurrentUpdate,
    Conversation,
    ConversationKey,
    NotFound,
    OutboxMessage,
    Store,
)

KEY = ConversationKey(channel="telegram", user_id="1001")
NOW = datetime(2026, 11, 24, 10, 30, 15, 123456, tzinfo=SHANGHAI)


def _conversation(**changes: object) -> Conversation:
    fields: dict[str, object] = {
        "key": KEY,
        "flow": "apply",
        "state": "pick_reason",
        "data": {"order_id": "O1", "evidence": [{"file_id": "x", "kind": "photo"}], "备注": "中文"},
        "locale": "zh-CN",
        "updated_at": NOW,
        "remind_at": NOW + timedelta(hours=2),
    }
    fields.update(changes)
    return Conversation(**fields)  # type: ignore[arg-type]


# --- conversations ---------------------------------------------------------------------------


def test_unknown_conversation_is_none(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.conversation(KEY) is None


def test_save_new_conversation_returns_version_1_and_round_trips(store: Store) -> None:
    with store.unit_of_work() as uow:
        customer = uow.upsert_customer("+8613800138000", "张三")
        new = _conversation(customer_id=customer.customer_id)
        saved = uow.save_conversation(new)
    assert new.version == 0  # the input is not changed
    assert saved == dataclasses.replace(new, version=1)
    with store.unit_of_work() as uow:
        stored = uow.conversation(KEY)
    assert stored == saved
    assert stored is not None
    assert stored.updated_at is not None
    assert stored.remind_at is not None
    assert stored.updated_at.utcoffset() == timedelta(0)
    assert stored.remind_at.utcoffset() == timedelta(0)


def test_saving_the_read_version_updates_and_bumps_it(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.save_conversation(_conversation())
    with store.unit_of_work() as uow:
        read = uow.conversation(KEY)
        assert read is not None
        changed = dataclasses.replace(
            read, state="upload_evidence", data={"n": 1}, locale="en", remind_at=None
        )
        saved = uow.save_conversation(changed)
    assert saved.version == 2
    with store.unit_of_work() as uow:
        assert uow.conversation(KEY) == saved


def test_saving_a_stale_version_is_a_concurrent_update(store: Store) -> None:
    """From save_conversation, or (a store that sends the update with the next statement) from
    that statement or the commit: the unit of work commits nothing."""
    with store.unit_of_work() as uow:
        first = uow.save_conversation(_conversation())
        uow.save_conversation(dataclasses.replace(first, state="a"))
    with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
        uow.save_conversation(dataclasses.replace(first, state="b"))
        uow.queue(OutboxMessage("telegram", "42", {"text": "not to be sent"}, created_at=NOW))
    with store.unit_of_work() as uow:
        stored = uow.conversation(KEY)
        assert stored is not None
        assert (stored.state, stored.version) == ("a", 2)
        assert uow.pending_outbox() == []


def test_a_stale_save_fails_the_next_read_at_the_latest(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.save_conversation(_conversation())
        uow.save_conversation(dataclasses.replace(first, state="a"))
    with pytest.raises(ConcurrentUpdate), store.unit_of_work() as uow:
        uow.save_conversation(dataclasses.replace(first, state="b"))
        uow.conversation(KEY)
        pytest.fail("read on after a stale save")


def test_inserting_an_existing_conversation_is_a_concurrent_update(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.save_conversation(_conversation())
        with pytest.raises(ConcurrentUpdate):
            uow.save_conversation(_conversation(state="other"))
        stored = uow.conversation(KEY)
        assert stored is not None
        assert stored.state == "pick_reason"


def test_updating_a_conversation_never_saved_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound), store.unit_of_work() as uow:  # from the save or the commit
        uow.save_conversation(_conversation(version=3))
    with store.unit_of_work() as uow:
        assert uow.conversation(KEY) is None


def test_conversation_of_unknown_customer_is_refused(store: Store) -> None:
    with pytest.raises(NotFound), store.unit_of_work() as uow:
        uow.save_conversation(_conversation(customer_id=999))


def test_conversations_are_keyed_by_channel_and_user(store: Store) -> None:
    console = ConversationKey(channel="console", user_id="1001")
    with store.unit_of_work() as uow:
        uow.save_conversation(_conversation())
        uow.save_conversation(_conversation(key=console, flow="status"))
    with store.unit_of_work() as uow:
        found = uow.conversation(console)
        assert found is not None
        assert found.flow == "status"
        other = uow.conversation(KEY)
        assert other is not None
        assert other.flow == "apply"


def test_missing_updated_at_is_stamped(store: Store) -> None:
    with store.unit_of_work() as uow:
        saved = uow.save_conversation(_conversation(updated_at=None))
    assert saved.updated_at is not None
    assert saved.updated_at.tzinfo is not None
    with store.unit_of_work() as uow:
        stored = uow.conversation(KEY)
    assert stored is not None
    assert stored.updated_at == saved.updated_at


def test_naive_datetimes_are_refused(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(ValueError, match="naive"):
        uow.save_conversation(_conversation(remind_at=datetime(2026, 11, 24, 12, 0)))


def test_conversations_due_are_those_with_a_reminder_at_or_before_now(store: Store) -> None:
    with store.unit_of_work() as uow:
        for user, remind in [("a", 3), ("b", 1), ("c", None), ("d", 2), ("e", 5)]:
            uow.save_conversation(
                _conversation(
                    key=ConversationKey("telegram", user),
                    remind_at=None if remind is None else NOW + timedelta(hours=remind),
                )
            )
    with store.unit_of_work() as uow:
        assert uow.conversations_due(NOW) == []
        due = uow.conversations_due(NOW + timedelta(hours=3))
        # The same instant written in UTC must compare equal to the Shanghai one.
        due_utc = uow.conversations_due((NOW + timedelta(hours=3)).astimezone(UTC))
    assert [c.key.user_id for c in due] == ["b", "d", "a"]
    assert due == due_utc
    assert due[0].data["备注"] == "中文"


# --- processed updates -----------------------------------------------------------------------


def test_mark_processed_is_true_once(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.mark_processed("tg:update:1", NOW) is True
        assert uow.mark_processed("tg:update:1", NOW) is False
        assert uow.mark_processed("tg:update:2", NOW) is True
    with store.unit_of_work() as uow:
        assert uow.mark_processed("tg:update:1", NOW + timedelta(days=1)) is False


def test_a_turn_begins_by_marking_its_key_and_reading_the_conversation(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.mark_processed_and_read("tg:update:1", NOW, KEY) == (True, None)
        customer = uow.upsert_customer("+8613800138000", "张三")
        saved = uow.save_conversation(_conversation(customer_id=customer.customer_id))
        assert uow.mark_processed_and_read("tg:update:2", NOW, KEY) == (True, saved)
    with store.unit_of_work() as uow:
        assert uow.mark_processed_and_read("tg:update:1", NOW, KEY) == (False, saved)
        other = ConversationKey(channel="telegram", user_id="2002")
        assert uow.mark_processed_and_read("tg:update:3", NOW, other) == (True, None)
    with store.unit_of_work() as uow:
        assert uow.mark_processed("tg:update:3", NOW) is False  # recorded with the commit


def test_forget_processed_drops_only_the_keys_recorded_before(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.mark_processed("old", NOW - timedelta(days=8))
        uow.mark_processed("edge", NOW - timedelta(days=7))
        uow.mark_processed("new", NOW)
    with store.unit_of_work() as uow:
        assert uow.forget_processed(NOW - timedelta(days=7)) == 1
        assert uow.forget_processed(NOW - timedelta(days=7)) == 0
    with store.unit_of_work() as uow:
        assert uow.mark_processed("old", NOW) is True  # forgotten: it would count again
        assert uow.mark_processed("edge", NOW) is False
        assert uow.mark_processed("new", NOW) is False


def test_a_rolled_back_turn_leaves_its_update_unprocessed(store: Store) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        assert uow.mark_processed("tg:update:1", NOW) is True
        raise RuntimeError("the turn crashed")
    with store.unit_of_work() as uow:
        assert uow.mark_processed("tg:update:1", NOW) is True


# --- outbox ----------------------------------------------------------------------------------


def _message(text: str, **changes: object) -> OutboxMessage:
    fields: dict[str, object] = {
        "channel": "telegram",
        "recipient": "1001",
        "payload": {"text": text, "buttons": [["确认", "取消"]]},
    }
    fields.update(changes)
    return OutboxMessage(**fields)  # type: ignore[arg-type]


def test_enqueue_assigns_id_and_time_and_round_trips(store: Store) -> None:
    with store.unit_of_work() as uow:
        queued = uow.enqueue(_message("你好"))
        dated = uow.enqueue(_message("later", created_at=NOW))
    assert queued.outbox_id is not None
    assert queued.created_at is not None
    assert queued.created_at.tzinfo is not None
    assert dated.created_at == NOW
    with store.unit_of_work() as uow:
        pending = uow.pending_outbox()
    assert dated in pending
    stored = next(m for m in pending if m.outbox_id == queued.outbox_id)
    assert stored == queued
    assert stored.payload == {"text": "你好", "buttons": [["确认", "取消"]]}


def test_pending_outbox_oldest_first_unsent_only_limited(store: Store) -> None:
    with store.unit_of_work() as uow:
        late = uow.enqueue(_message("3", created_at=NOW + timedelta(seconds=2)))
        early = uow.enqueue(_message("1", created_at=NOW))
        tie = uow.enqueue(_message("2", created_at=NOW))  # same time: queue order
        sent = uow.enqueue(_message("0", created_at=NOW - timedelta(seconds=1)))
        assert sent.outbox_id is not None
        uow.mark_sent(sent.outbox_id, NOW)
    with store.unit_of_work() as uow:
        assert [m.payload["text"] for m in uow.pending_outbox()] == ["1", "2", "3"]
        assert uow.pending_outbox(limit=2) == [early, tie]
        assert late.outbox_id is not None
        uow.mark_sent(late.outbox_id, NOW)
        assert [m.payload["text"] for m in uow.pending_outbox()] == ["1", "2"]


def test_mark_sent_twice_is_harmless_and_unknown_is_not_found(store: Store) -> None:
    with store.unit_of_work() as uow:
        message = uow.enqueue(_message("x"))
        assert message.outbox_id is not None
        uow.mark_sent(message.outbox_id, NOW)
        uow.mark_sent(message.outbox_id, NOW + timedelta(minutes=1))
        assert uow.pending_outbox() == []
        with pytest.raises(NotFound):
            uow.mark_sent(999_999, NOW)


def test_enqueue_with_an_id_is_refused(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(ValueError, match="id"):
        uow.enqueue(_message("x", outbox_id=5))


# -- delivery records without a transaction of their own (Store.mark_sent_soon) --------------


def _ids(store: Store) -> list[int]:
    with store.unit_of_work() as uow:
        return [m.outbox_id for m in uow.pending_outbox() if m.outbox_id is not None]


def test_mark_sent_soon_rides_on_the_next_unit_of_work(
    store: Store, open_store: Callable[[], Store]
) -> None:
    with store.unit_of_work() as uow:
        first, second = uow.enqueue(_message("1")), uow.enqueue(_message("2"))
    assert first.outbox_id is not None and second.outbox_id is not None
    other = open_store()  # another process on the same database
    store.mark_sent_soon([first.outbox_id], NOW)
    assert _ids(other) == [first.outbox_id, second.outbox_id]  # not written yet
    assert _ids(store) == [second.outbox_id]  # this store's next unit of work wrote it...
    assert _ids(other) == [second.outbox_id]  # ...and committed it
    store.mark_sent_soon([second.outbox_id], NOW)
    store.flush()
    assert _ids(other) == []


def test_mark_sent_soon_survives_a_rolled_back_unit_of_work(
    store: Store, open_store: Callable[[], Store]
) -> None:
    with store.unit_of_work() as uow:
        message = uow.enqueue(_message("1"))
    assert message.outbox_id is not None
    store.mark_sent_soon([message.outbox_id], NOW)
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.enqueue(_message("rolled back"))
        raise RuntimeError("the turn failed")
    other = open_store()
    assert _ids(other) == [message.outbox_id]  # rolled back with that unit of work...
    store.flush()
    assert _ids(other) == []  # ...and written by the next one


def test_close_writes_the_delivery_records_still_held(
    store: Store, open_store: Callable[[], Store]
) -> None:
    with store.unit_of_work() as uow:
        message = uow.enqueue(_message("1"))
    assert message.outbox_id is not None
    store.mark_sent_soon([message.outbox_id], NOW)
    store.mark_sent_soon([message.outbox_id], NOW + timedelta(minutes=1))  # twice: harmless
    store.close()
    assert _ids(open_store()) == []


def test_queue_is_enqueue_without_the_id_back(store: Store) -> None:
    """Messages queued and enqueued in one unit of work go out in the order they were written;
    a unit of work that rolls back queues nothing."""
    with store.unit_of_work() as uow:
        assert uow.queue(OutboxMessage("telegram", "1001", {"key": "a"}, created_at=NOW)) is None
        uow.enqueue(OutboxMessage("telegram", "1001", {"key": "b"}, created_at=NOW))
        uow.queue(OutboxMessage("telegram", "1001", {"key": "c"}, created_at=NOW))
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.queue(OutboxMessage("telegram", "1001", {"key": "lost"}, created_at=NOW))
        raise RuntimeError("the turn failed")
    with store.unit_of_work() as uow:
        pending = uow.pending_outbox(10)
    assert [m.payload["key"] for m in pending] == ["a", "b", "c"]
    assert all(m.outbox_id is not None and m.created_at == NOW for m in pending)
    with store.unit_of_work() as uow, pytest.raises(ValueError):
        uow.queue(pending[0])  # an id already: the store assigns it

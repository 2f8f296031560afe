"""Store contract: the outbox read by one channel and one recipient (the Telegram adapter's view)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.clock import SHANGHAI
from bot.store import OutboxMessage, Store

NOW = datetime(2026, 11, 24, 10, 30, tzinfo=SHANGHAI)


def _message(channel: str, recipient: str, text: str, seconds: int) -> OutboxMessage:
    return OutboxMessage(
        channel, recipient, {"text": text}, created_at=NOW + timedelta(seconds=seconds)
    )


def test_pending_outbox_by_channel_and_recipient(store: Store) -> None:
    with store.unit_of_work() as uow:
        uow.enqueue(_message("console", "demo", "c", 0))
        uow.enqueue(_message("telegram", "1", "a1", 1))
        uow.enqueue(_message("telegram", "2", "b1", 2))
        uow.enqueue(_message("telegram", "1", "a2", 3))
    with store.unit_of_work() as uow:

        def texts(channel: str | None = None, recipient: str | None = None) -> list[str]:
            return [m.payload["text"] for m in uow.pending_outbox(100, channel, recipient)]

        assert texts() == ["c", "a1", "b1", "a2"]
        assert texts(channel="telegram") == ["a1", "b1", "a2"]
        assert texts(channel="telegram", recipient="1") == ["a1", "a2"]
        assert texts(recipient="demo") == ["c"]
        assert texts(channel="console", recipient="1") == []
        assert [m.payload["text"] for m in uow.pending_outbox(1, "telegram", "1")] == ["a1"]

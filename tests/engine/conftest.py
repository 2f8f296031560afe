"""A chat driver for engine tests: a customer who types, presses buttons by label, sends files."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.config import Config, deep_merge, parse_config
from bot.domain import EvidenceKind, Order, Ticket
from bot.engine import ContactInfo, FileInfo, Inbound, Kind, Reply, TurnResult
from bot.orders_import import import_orders
from bot.store import ConversationKey, Identity
from bot.store.sqlite import SqliteStore
from bot.tickets import move
from tests.factories import at, make_order, repo_config

_ids = itertools.count(1)


class Chat:
    """One Telegram-like customer (user id = chat id) talking to the engine."""

    def __init__(self, app: App, user_id: int = 1001, language: str | None = None) -> None:
        self.app = app
        self.user_id = user_id
        self.key = ConversationKey("telegram", str(user_id))
        self.language = language
        self.last: TurnResult = TurnResult()
        self.replies: list[Reply] = []

    # -- what the customer does --------------------------------------------------------------

    def send(self, kind: Kind, dedupe: str | None = None, **fields: Any) -> TurnResult:
        event = Inbound(
            self.key,
            kind,
            dedupe or f"test:{next(_ids)}",
            sender_id=self.user_id,
            language_code=self.language,
            **fields,
        )
        self.last = self.app.engine.handle(event)
        if self.last.replies:
            self.replies = self.last.replies
        return self.last

    def command(self, name: str) -> TurnResult:
        return self.send(Kind.COMMAND, command=name)

    def type(self, text: str) -> TurnResult:
        return self.send(Kind.TEXT, text=text)

    def press(self, label: str) -> TurnResult:
        """Press the button whose label contains `label` in the latest message with buttons."""
        token = self.token(label)
        return self.send(Kind.BUTTON, token=token)

    def token(self, label: str) -> str:
        for reply in reversed(self.replies):
            for b in reply.buttons:
                if label in b.label and b.token:
                    return b.token
        raise AssertionError(f"no button {label!r} in {self.buttons()}")

    def share_contact(self, phone: str = "+8613800138000", user_id: int | None = -1) -> TurnResult:
        owner = self.user_id if user_id == -1 else user_id
        return self.send(Kind.CONTACT, contact=ContactInfo(phone, owner))

    def photo(
        self, name: str = "shot", size: int = 200_000, kind: EvidenceKind = EvidenceKind.PHOTO
    ) -> TurnResult:
        return self.send(Kind.FILE, files=(file_info(name, size, kind),))

    # -- what the customer sees --------------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(r.text for r in self.last.replies)

    def buttons(self) -> list[str]:
        for reply in reversed(self.replies):
            if reply.buttons:
                return [b.label for b in reply.buttons]
        return []

    @property
    def state(self) -> str:
        conv = self.app.engine.conversation(self.key)
        assert conv is not None
        return f"{conv.flow}.{conv.state}"

    def link(self) -> None:
        self.command("start")
        self.share_contact()
        assert self.state == "menu.main", self.text

    def tickets(self) -> list[Ticket]:
        with self.app.store.unit_of_work() as uow:
            customer = uow.customer_by_identity(Identity("telegram", str(self.user_id)))
            assert customer is not None
            return uow.tickets_of_customer(customer.customer_id)


def another_chat(chat: Chat, name: str) -> Chat:
    """The same Telegram user in another conversation (a second device, a group's topic)."""
    other = Chat(chat.app, user_id=chat.user_id, language=chat.language)
    other.key = ConversationKey("telegram", name)
    return other


def file_info(name: str, size: int = 200_000, kind: EvidenceKind = EvidenceKind.PHOTO) -> FileInfo:
    return FileInfo(
        kind=kind,
        file_id=f"fid-{name}",
        file_unique_id=f"uid-{name}",
        size_bytes=size,
        file_name=None,
    )


# the engine's tests run with an agent desk configured (a person can take the chat); the honest
# answer without one is tested with `agent_desk={"chat_id": None}`
TEST_DESK = {"chat_id": -1000000000777}


def test_config(tmp_path: Path, **overrides: Any) -> Config:
    data = deep_merge(
        repo_config().model_dump(mode="json"),
        {"store": {"path": str(tmp_path / "t.sqlite3")}, "agent_desk": TEST_DESK},
    )
    return parse_config(deep_merge(data, overrides))


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def demo_orders() -> list[Order]:
    """A handful of orders of the customer +8613800138000, bought before 2026-11-24 10:00."""
    return [
        make_order(
            order_id="V1",
            product_name="星河视频年卡",
            cash_paid_fen=19800,
            list_price_fen=19800,
            paid_at=at("2026-11-22 10:00"),
        ),
        make_order(
            order_id="C1",
            product_name="知行网课年卡",
            category="course",
            cash_paid_fen=59900,
            list_price_fen=59900,
            paid_at=at("2026-11-20 20:00"),
            activated_at=at("2026-11-20 20:10"),
            activation_exclusion_confirmed=True,  # so that the dispute path is the way in
        ),
        make_order(
            order_id="G1",
            product_name="幻境点卡",
            category="game_points",
            paid_at=at("2026-11-23 10:00"),
            activation_exclusion_confirmed=True,  # confirmed at purchase: excluded by nature
        ),
        make_order(
            order_id="Y1",
            product_name="力健健身年卡",
            category="gym",
            cash_paid_fen=268000,
            list_price_fen=268000,
            paid_at=at("2026-03-01 10:00"),
            used_days=240,
            merchant_status="closed",
        ),
        make_order(
            order_id="M1",
            product_name="电子书年卡",
            paid_at=at("2026-10-25 10:00"),
            used_days=30,
            list_price_fen=11000,
            coupon_fen=1000,
            cash_paid_fen=10000,
        ),
        make_order(
            order_id="X1", product_name="别人的年卡", phone="+8613900139000", customer_name="李四"
        ),
    ]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(at("2026-11-24 10:00"))


@pytest.fixture
def app(tmp_path: Path, clock: FixedClock) -> Iterator[App]:
    config = test_config(tmp_path)
    store = SqliteStore.open(config.store.path, clock=clock)
    application = build_app(config, clock=clock, store=store)
    import_orders(application.store, demo_orders())
    yield application
    application.close()


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app)


def advance(clock: FixedClock, **delta: float) -> None:
    clock.advance(timedelta(**delta))


def apply_for(chat: Chat, order: str, reason: str, *choices: str, photos: int = 0) -> Ticket:
    """File a ticket through the dialogue: order and reason by label, then `choices` pressed
    before "继续申请" (a sub-reason, the activation dispute), `photos` uploaded, full amount."""
    chat.command("refund")
    chat.press(order)
    chat.press(reason)
    for label in choices:
        chat.press(label)
    chat.press("继续申请")
    assert chat.state == "apply.evidence", chat.text
    for i in range(photos):
        chat.photo(f"{order}-{reason}-{i}")
    chat.press("上传完成")
    chat.press("全额")
    chat.press("确认提交")
    assert chat.state == "status.detail", chat.text
    return chat.tickets()[0]


def agent_moves(app: App, ticket_no: str, trigger: str, **data: Any) -> Ticket:
    """What the agent desk does: move a ticket through its lifecycle (request_info, reject...)."""
    with app.store.unit_of_work() as uow:
        ticket = uow.ticket(ticket_no)
        assert ticket is not None
        return move(uow, ticket, trigger, "agent:1", app.clock.now(), **data)


def outbox_of(app: App, chat: Chat) -> list[dict[str, Any]]:
    """The payloads waiting to be sent to this chat."""
    with app.store.unit_of_work() as uow:
        return [m.payload for m in uow.pending_outbox(1000) if m.recipient == chat.key.user_id]


def _c1_ticket(app: App, chat: Chat) -> Ticket:
    chat.link()
    return apply_for(chat, "知行", "七天无理由", "我没有真正使用", photos=1)


def _to_escalation(app: App, chat: Chat) -> None:
    ticket = _c1_ticket(app, chat)
    agent_moves(app, ticket.ticket_no, "reject", reason="有学习记录")
    chat.command("status")
    chat.press(ticket.ticket_no)
    chat.press("申诉")
    chat.press("开始申诉")
    chat.type("我没有用过")
    chat.press("提交申诉")
    agent_moves(app, ticket.ticket_no, "reject", reason="仍有学习记录")
    chat.command("status")
    chat.press(ticket.ticket_no)
    chat.press("投诉渠道")


def _to_supplement(app: App, chat: Chat) -> None:
    ticket = _c1_ticket(app, chat)
    agent_moves(app, ticket.ticket_no, "request_info", request="请上传学习记录截图")
    chat.command("status")
    chat.press(ticket.ticket_no)
    chat.press("补充材料")


def _to_rating(app: App, chat: Chat) -> None:
    """A ticket ended and the desk asked for a rating (a SYSTEM event, as bot/handoff sends)."""
    ticket = _c1_ticket(app, chat)
    agent_moves(app, ticket.ticket_no, "reject", reason="有学习记录")
    chat.command("menu")
    chat.send(Kind.SYSTEM, command="rating_requested", text=ticket.ticket_no)


def _to_rating_comment(app: App, chat: Chat) -> None:
    _to_rating(app, chat)
    chat.press("★★★★")


def _to_appeal(app: App, chat: Chat) -> None:
    ticket = _c1_ticket(app, chat)
    agent_moves(app, ticket.ticket_no, "reject", reason="有学习记录")
    chat.command("status")
    chat.press(ticket.ticket_no)
    chat.press("申诉")


def _to_detail(app: App, chat: Chat) -> None:
    _c1_ticket(app, chat)


def _to_appeal_upload(app: App, chat: Chat) -> None:
    _to_appeal(app, chat)
    chat.press("开始申诉")


def _steps(*steps: str, linked: bool = True) -> Callable[[App, Chat], None]:
    """Reach a state by steps 'press:label', 'type:text', 'command:name'."""

    def run(app: App, chat: Chat) -> None:
        if linked:
            chat.link()
        else:
            chat.command("start")
        for step in steps:
            kind, _, arg = step.partition(":")
            getattr(chat, kind)(arg)

    return run


def _to_locked(app: App, chat: Chat) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    for _ in range(app.config.dialogue.link_attempts):
        chat.type("V1")
        chat.type("1111")


# how to get a fresh customer to every state of every flow (a test checks none is missing)
REACH: dict[str, Callable[[App, Chat], None]] = {
    "start.welcome": _steps(linked=False),
    "start.ask_order_no": _steps("press:用订单号验证", linked=False),
    "start.ask_last4": _steps("press:用订单号验证", "type:V1", linked=False),
    "start.locked": _to_locked,
    "menu.main": _steps(),
    "apply.choose_order": _steps("press:申请退款"),
    "apply.choose_reason": _steps("press:申请退款", "press:星河"),
    "apply.choose_sub_reason": _steps("press:申请退款", "press:力健", "press:服务未达标"),
    "apply.precheck": _steps("press:申请退款", "press:星河", "press:七天无理由"),
    "apply.evidence": _steps("press:申请退款", "press:星河", "press:七天无理由", "press:继续申请"),
    "apply.amount": _steps(
        "press:申请退款", "press:星河", "press:七天无理由", "press:继续申请", "press:上传完成"
    ),
    "apply.confirm": _steps(
        "press:申请退款",
        "press:星河",
        "press:七天无理由",
        "press:继续申请",
        "press:上传完成",
        "press:全额",
    ),
    "status.list": _steps("press:我的售后"),
    "status.detail": _to_detail,
    "status.escalation": _to_escalation,
    "supplement.upload": _to_supplement,
    "appeal.explain": _to_appeal,
    "appeal.upload": _to_appeal_upload,
    "handoff.with_agent": _steps("command:agent"),
    "rating.ask": _to_rating,
    "rating.comment": _to_rating_comment,
}


def reach(app: App, chat: Chat, where: str) -> None:
    REACH[where](app, chat)
    assert chat.state == where, (where, chat.state, chat.text)

"""Random conversations: whatever customers (and agents) do, in whatever order, the engine never
raises, every conversation sits in a declared state, no order gets two open tickets and no
amount goes past what the customer paid."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.app import App, build_app
from bot.clock import FixedClock
from bot.domain import OPEN_STATUSES, EvidenceKind, Refusal, allowed_triggers
from bot.engine import COMMANDS, ContactInfo, FileInfo, Inbound, Kind, TurnResult
from bot.orders_import import import_orders
from bot.tickets import approve, move
from tests.engine.conftest import Chat, demo_orders, test_config
from tests.factories import at

ORDERS = demo_orders()
ORDER_IDS = [o.order_id for o in ORDERS]
CASH_PAID = {o.order_id: o.cash_paid_fen for o in ORDERS}
OWNER = {o.order_id: o.phone for o in ORDERS}
# the triggers of the buttons that lead on through a flow (the rest go back, cancel or hand off)
FORWARD = {
    "apply",
    "pick_order",
    "pick_reason",
    "pick_sub_reason",
    "dispute",
    "proceed",
    "done",
    "accept_amount",
    "submit",
    "status",
    "pick_ticket",
    "supplement",
    "appeal",
    "begin",
    "escalate",
}
# applications the owner of the demo orders may have filed before the random part begins
APPLICATIONS = [
    ("星河", "七天无理由", "继续", "上传完成", "全额", "确认提交"),  # approved at once
    ("知行", "七天无理由", "我没有真正使用", "继续", "photo", "上传完成", "全额", "确认提交"),
    ("力健", "服务未达标", "商家失联", "继续", "photo", "上传完成", "全额", "确认提交"),
    ("电子书", "误购", "买错了", "继续", "上传完成", "全额", "确认提交"),
]
AGENT_ANSWERS = [None, "reject", "request_info"]
# what go_forward types where a step reads text: amounts (above every cap too), notes, digits
TYPED = ["99999", "1", "50.5", "198.01", "0", "我没用过", "8000", "V1"]
PHONES = ["+8613800138000", "+8613900139000", "+8613700000000", "13800138000", "12345"]

TEXTS = st.one_of(
    st.sampled_from(
        [
            "",
            "50",
            "0",
            "-3",
            "99999",
            "12.345",
            "abc",
            "人工",
            "转人工 please",
            "取消",
            "菜单",
            "cancel",
            "8000",
            "9000",
            "1234",
            "V1",
            "XN20261120001",
            "申请退款",
            "我的售后",
            "English",
        ]
    ),
    st.sampled_from(ORDER_IDS),
    st.text(max_size=40),
)
FILES = st.builds(
    FileInfo,
    kind=st.sampled_from(list(EvidenceKind)),
    file_id=st.sampled_from(["f1", "f2", "f3", "f4"]),
    file_unique_id=st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
    size_bytes=st.sampled_from([0, 1, 200_000, 20 * 1024 * 1024, 20 * 1024 * 1024 + 1]),
    file_name=st.none() | st.just("proof.pdf"),
)


class Conversations(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="stateful-"))
        self.clock = FixedClock(at("2026-11-24 10:00"))
        self.config = test_config(self.tmp)
        self.app: App = build_app(self.config, clock=self.clock)
        import_orders(self.app.store, ORDERS)
        # the owner of the demo orders, the owner of X1, and a stranger
        self.chats = [Chat(self.app, 1001), Chat(self.app, 2002), Chat(self.app, 3003)]
        self.tokens: dict[str, None] = {}  # every token seen, in order (the nonces are random)
        self.last_event: Inbound | None = None
        self.events = 0
        self.photos = 0

    def teardown(self) -> None:
        self.app.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------

    def _send(self, chat: Chat, kind: Kind, **fields: Any) -> TurnResult:
        self.events += 1
        event = Inbound(chat.key, kind, f"rnd:{self.events}", sender_id=chat.user_id, **fields)
        result = self.app.engine.handle(event)
        assert not result.duplicate
        if result.replies:
            chat.replies = result.replies
        chat.last = result
        for reply in result.replies:
            self.tokens.update(dict.fromkeys(b.token for b in reply.buttons if b.token))
        self.last_event = event
        return result

    def _buttons(self, chat: Chat) -> list[str]:
        for reply in reversed(chat.replies):
            tokens = [b.token for b in reply.buttons if b.token]
            if tokens:
                return tokens
        return []

    # -- what customers do ------------------------------------------------------------------

    @initialize(
        linked=st.lists(st.booleans(), min_size=2, max_size=2),
        applications=st.lists(
            st.tuples(st.sampled_from(APPLICATIONS), st.sampled_from(AGENT_ANSWERS)),
            max_size=3,
            unique_by=lambda a: a[0],
        ),
    )
    def begin(
        self, linked: list[bool], applications: list[tuple[tuple[str, ...], str | None]]
    ) -> None:
        """Some customers linked already, some with tickets filed (scripted, through the engine)
        and maybe answered by an agent (rejected, more material asked for)."""
        for chat, phone, link in zip(self.chats, PHONES, linked, strict=False):
            if link:
                self._send(chat, Kind.COMMAND, command="start")
                self._send(chat, Kind.CONTACT, contact=ContactInfo(phone, chat.user_id))
        owner = self.chats[0]
        if applications and not linked[0]:
            self._send(owner, Kind.COMMAND, command="start")
            self._send(owner, Kind.CONTACT, contact=ContactInfo(PHONES[0], owner.user_id))
        for labels, answer in applications:
            self._send(owner, Kind.COMMAND, command="refund")
            for label in labels:
                if label == "photo":
                    self._send_photo(owner)
                else:
                    self._send(owner, Kind.BUTTON, token=owner.token(label))
            assert owner.state == "status.detail", owner.text
            (ticket, *_) = owner.tickets()
            if answer is not None and answer in allowed_triggers(ticket.status):
                with self.app.store.unit_of_work() as uow:
                    now = self.clock.now()
                    move(uow, ticket, answer, "agent:1", now, request="截图", reason="不符合")

    @rule(who=st.integers(0, 2), index=st.integers(0, 30))
    def press_a_current_button(self, who: int, index: int) -> None:
        chat = self.chats[who]
        tokens = self._buttons(chat)
        if tokens:
            self._send(chat, Kind.BUTTON, token=tokens[index % len(tokens)])

    @rule(who=st.integers(0, 2))
    def press_the_first_button(self, who: int) -> None:
        # the first button is mostly the way forward (an order, a reason, continue, done, submit)
        chat = self.chats[who]
        tokens = self._buttons(chat)
        if tokens:
            self._send(chat, Kind.BUTTON, token=tokens[0])

    @rule(who=st.integers(0, 2), moves=st.lists(st.integers(-1, 30) | st.just(0), max_size=10))
    def walk(self, who: int, moves: list[int]) -> None:
        """Several steps in a row: press a current button (often the first), or upload a photo."""
        chat = self.chats[who]
        for step in moves:
            tokens = self._buttons(chat)
            if step < 0:
                self._send_photo(chat)
            elif tokens:
                self._send(chat, Kind.BUTTON, token=tokens[step % len(tokens)])

    @rule(who=st.integers(0, 1), moves=st.lists(st.integers(-1, 30), min_size=3, max_size=15))
    def go_forward(self, who: int, moves: list[int]) -> None:
        """Several steps towards a ticket or through one: the buttons that lead on, a photo now
        and then (-1), and where a step reads text, often an amount or a note instead."""
        chat = self.chats[who]
        for step in moves:
            conv = self.app.engine.conversation(chat.key)
            if conv is None:
                return
            if step < 0:
                self._send_photo(chat)
                continue
            if self.app.flows.state(conv.flow, conv.state).on_text and step % 2 == 0:
                self._send(chat, Kind.TEXT, text=TYPED[step // 2 % len(TYPED)])
                continue
            nonce = conv.data.get("menu", {}).get("nonce")
            items = conv.data.get("menu", {}).get("items", [])
            forward = [i for i, item in enumerate(items) if item[0] in FORWARD]
            if not forward:  # a dead end (a ticket's detail, a quiet handoff): start anew
                self._send(chat, Kind.COMMAND, command=("refund", "status")[step % 2])
                continue
            self._send(chat, Kind.BUTTON, token=f"{nonce}.{forward[step % len(forward)]}")

    def _send_photo(self, chat: Chat) -> None:
        self.photos += 1
        photo = FileInfo(EvidenceKind.PHOTO, "p", f"photo-{self.photos}", 100_000)
        self._send(chat, Kind.FILE, files=(photo,))

    @rule(who=st.integers(0, 2), data=st.data())
    def press_an_old_or_foreign_button(self, who: int, data: st.DataObject) -> None:
        if self.tokens:
            token = data.draw(st.sampled_from(list(self.tokens)))
            self._send(self.chats[who], Kind.BUTTON, token=token)

    @rule(who=st.integers(0, 2), token=st.text(max_size=20))
    def press_a_forged_button(self, who: int, token: str) -> None:
        self._send(self.chats[who], Kind.BUTTON, token=token)

    @rule(who=st.integers(0, 2), text=TEXTS)
    def type_text(self, who: int, text: str) -> None:
        self._send(self.chats[who], Kind.TEXT, text=text)

    @rule(who=st.integers(0, 2), command=st.sampled_from([*COMMANDS, "bogus", ""]))
    def send_command(self, who: int, command: str) -> None:
        self._send(self.chats[who], Kind.COMMAND, command=command)

    @rule(who=st.integers(0, 2), files=st.lists(FILES, min_size=0, max_size=11))
    def send_files(self, who: int, files: list[FileInfo]) -> None:
        self._send(self.chats[who], Kind.FILE, files=tuple(files))

    @rule(
        who=st.integers(0, 2),
        phone=st.sampled_from(PHONES),
        owner=st.sampled_from(["self", "other", "none"]),
        forwarded=st.booleans(),
    )
    def share_contact(self, who: int, phone: str, owner: str, forwarded: bool) -> None:
        chat = self.chats[who]
        user_id = {"self": chat.user_id, "other": 4004, "none": None}[owner]
        self._send(chat, Kind.CONTACT, contact=ContactInfo(phone, user_id), forwarded=forwarded)

    @rule()
    def replay_the_last_event(self) -> None:
        """A Telegram update delivered twice takes effect once."""
        if self.last_event is None:
            return
        again = self.app.engine.handle(self.last_event)
        assert again.duplicate and not again.replies and not again.effects

    # -- time, restarts and agents ----------------------------------------------------------

    @rule(minutes=st.integers(0, 6 * 24 * 60))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        first = self.app.engine.fire_reminders()
        for reminder in first:
            assert not reminder.duplicate
            assert reminder.replies[0].key == "common.reminder"
            assert self.app.flows.state(reminder.flow, reminder.state).remind
        assert self.app.engine.fire_reminders() == []  # one reminder, never two

    @rule()
    def restart(self) -> None:
        self.app.close()
        self.app = build_app(self.config, clock=self.clock)
        for chat in self.chats:
            chat.app = self.app

    @rule(data=st.data())
    def agent_acts(self, data: st.DataObject) -> None:
        with self.app.store.unit_of_work() as uow:
            tickets = [t for order_id in ORDER_IDS for t in uow.tickets_of_order(order_id)]
        if not tickets:
            return
        ticket = data.draw(st.sampled_from(tickets))
        triggers = allowed_triggers(ticket.status)
        if not triggers:
            return
        trigger = data.draw(st.sampled_from(triggers))
        now = self.clock.now()
        try:
            with self.app.store.unit_of_work() as uow:
                current = uow.ticket(ticket.ticket_no)
                assert current is not None
                if trigger == "approve":
                    order = uow.order(current.order_id)
                    assert order is not None
                    amount = data.draw(st.integers(1, order.cash_paid_fen + 100))
                    approve(
                        uow,
                        self.app.config,
                        self.app.calendar,
                        current,
                        order,
                        amount,
                        "agent:1",
                        now,
                    )
                else:
                    move(uow, current, trigger, "agent:1", now, request="截图", reason="不符合")
        except Refusal:
            pass  # e.g. an amount above the cap: refused, and nothing written

    # -- what must always hold --------------------------------------------------------------

    @invariant()
    def every_conversation_is_in_a_declared_state_with_its_amount_capped(self) -> None:
        for chat in self.chats:
            conv = self.app.engine.conversation(chat.key)
            if conv is not None:
                assert self.app.flows.has_state(conv.flow, conv.state), (conv.flow, conv.state)
                if "amount_fen" in conv.data:  # an amount on its way to the confirm step
                    cap = conv.data["quote"]["amount_fen"]
                    assert 0 < conv.data["amount_fen"] <= cap

    @invariant()
    def one_open_ticket_per_order_and_amounts_within_the_cap(self) -> None:
        with self.app.store.unit_of_work() as uow:
            open_per_order: dict[str, int] = defaultdict(int)
            for order_id in ORDER_IDS:
                paid = CASH_PAID[order_id]
                for t in uow.tickets_of_order(order_id):
                    if t.status in OPEN_STATUSES:
                        open_per_order[order_id] += 1
                    assert 0 < t.requested_fen <= t.quote.amount_fen <= t.quote.cap_fen <= paid
                    assert t.approved_fen is None or 0 < t.approved_fen <= paid
                    customer = uow.customer(t.customer_id)
                    assert customer is not None and customer.phone == OWNER[order_id]
                assert uow.refunded_fen(order_id) <= paid
            assert all(n <= 1 for n in open_per_order.values()), dict(open_per_order)


Conversations.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConversations = Conversations.TestCase

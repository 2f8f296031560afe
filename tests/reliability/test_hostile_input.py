"""Hostile input: hypothesis-generated updates (random unicode and oversized text, random and forged
button data, random file metadata, contacts, edits, unknown update types, groups and channels)
through python-telegram-bot and the adapter. Nothing may raise out of the adapter (its error
handler never runs), every conversation stays in a declared state, every press is answered, and
the bot keeps to the Bot API's limits in what it sends back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram.ext import AIORateLimiter

from bot.clock import FixedClock
from bot.config import Config
from bot.i18n import default_catalog
from bot.orders_import import import_orders
from bot.telegram import conversation_key
from bot.testing import FakeTelegram, Updates, User
from tests.factories import at, make_order
from tests.handoff.desk import AGENT1, FORUM, GROUP_ID
from tests.telegram.support import NOW, ShopHarness, telegram_config

AGENT = AGENT1
EXAMPLES = 200
_ids = itertools.count(1)  # fresh customers for every example: examples do not see each other

# -- what a hostile (or merely strange) Telegram may send --------------------------------------

texts = st.one_of(
    st.text(max_size=60),
    st.text(min_size=4000, max_size=4200),  # around the 4096 limit, in any script
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12_000),  # oversized
    st.sampled_from(
        [
            "",
            " ",
            "\u200b",
            "转人工",
            "cancel",
            "取消 转人工 human agent",
            "50",
            "0",
            "-1",
            "99999999999999999999999",
            "1e309",
            "NaN",
            "¥91.67",
            "１２３",
            "٣",
            "/start",
            "/start@other_bot",
            "/refund now please",
            "/approve T20261124-0001 100",
            "/" + "a" * 40,
            "{amount_fen}",
            "%s%n",
            "'); DROP TABLE tickets;--",
            "\x00\x01\x1b[2J",
            "🧧" * 3000,
        ]
    ),
)
callback_data = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "",
            "000000.0",
            "ffffff.-1",
            "abc.99999999999999999999",
            "abc.٣",
            ".",
            "..",
            "d:",
            "d:approve:T20261124-0001",
            "d:claim:" + "x" * 56,
            "d:reject:T20261124-0001:other",
        ]
    ),
)
sizes = st.one_of(st.none(), st.integers(min_value=0, max_value=2**52))
file_names = st.one_of(st.none(), st.text(max_size=300), st.sampled_from(["a.pdf", "../../etc/x"]))
mime_types = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["application/pdf", "image/png", "video/mp4", "application/x-msdownload"]),
)


@st.composite
def photo_sizes(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=4))
    photos = []
    for i in range(count):
        photo: dict[str, Any] = {
            "file_id": draw(st.text(min_size=1, max_size=80)),
            "file_unique_id": draw(st.text(min_size=1, max_size=40)) + str(i),
            "width": draw(st.integers(min_value=0, max_value=20_000)),
            "height": draw(st.integers(min_value=0, max_value=20_000)),
        }
        size = draw(sizes)
        if size is not None:
            photo["file_size"] = size
        photos.append(photo)
    return photos


@st.composite
def document(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "file_id": draw(st.text(min_size=1, max_size=80)),
        "file_unique_id": draw(st.text(min_size=1, max_size=40)),
    }
    for name, value in (
        ("file_name", draw(file_names)),
        ("mime_type", draw(mime_types)),
        ("file_size", draw(sizes)),
    ):
        if value is not None:
            doc[name] = value
    return doc


# An action names who does what; it becomes update JSON when it is fed, because a genuine press
# needs the token the bot showed last (the walk goes deep into the flows between the garbage).
who = st.integers(min_value=0, max_value=2)  # 0: has an order, 1: has none, 2: an agent
actions = st.one_of(
    st.tuples(st.just("link"), st.just(0)),
    st.tuples(st.just("forward"), st.just(0), st.integers(min_value=1, max_value=12)),
    st.tuples(st.just("forward"), st.just(0), st.integers(min_value=1, max_value=12)),
    st.tuples(st.just("press"), who, st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("press"), who, st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("press"), who, st.integers(min_value=0, max_value=30)),
    st.tuples(st.just("forged_press"), who, callback_data),
    st.tuples(st.just("tampered_press"), who, st.one_of(st.integers(), st.text(max_size=20))),
    st.tuples(st.just("foreign_press"), who, who),
    st.tuples(st.just("text"), who, texts),
    st.tuples(st.just("command"), who, st.text(max_size=40)),
    st.tuples(st.just("photo"), who, photo_sizes(), st.one_of(st.none(), st.just("album"))),
    st.tuples(st.just("document"), who, document()),
    st.tuples(
        st.just("media"),
        who,
        st.sampled_from(["video", "audio", "voice", "video_note", "sticker", "location", "dice"]),
    ),
    st.tuples(
        st.just("contact"),
        who,
        st.one_of(st.just("own"), st.text(max_size=30)),
        st.sampled_from(["own", "other", "none"]),
    ),
    st.tuples(st.just("edited"), who, texts),
    st.tuples(st.just("forwarded"), who, texts),
    st.tuples(
        st.just("group"),
        who,
        st.sampled_from(["group", "supergroup", "desk", "channel"]),
        texts,
    ),
    st.tuples(st.just("other_update"), st.sampled_from(["my_chat_member", "message_reaction"])),
    st.tuples(
        st.just("other_update"),
        st.sampled_from(["inline_query", "chosen_inline_result", "from_the_future"]),
    ),
)


class Walk:
    """Feeds actions to one running bot as the raw updates Telegram would post."""

    def __init__(self, harness: ShopHarness, updates: Updates) -> None:
        self.harness = harness
        self.updates = updates  # one numbering for all examples: Telegram never repeats an id
        self.presses = 0  # presses in private chats: each must be answered

    def begin(self) -> None:
        """Three fresh people: a customer with an order, one without, and (0 mapped) an agent."""
        n = next(_ids)
        self.phone = f"+86136{n:08d}"
        self.people = [
            User(100_000 + 2 * n, language_code="en"),
            User(100_001 + 2 * n, language_code=None),
            AGENT,
        ]
        order = make_order(order_id=f"H{n:07d}", phone=self.phone, paid_at=at("2026-11-22 10:00"))
        import_orders(self.harness.engine_app.store, [order])

    async def feed(self, action: tuple[Any, ...]) -> None:
        for update in self.updates_for(action):
            if "callback_query" in update:
                chat = update["callback_query"]["message"]["chat"]
                self.presses += chat["type"] == "private"
            await self.harness.process(update)

    def updates_for(self, action: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
        up, kind = self.updates, action[0]
        user = self.people[action[1]] if isinstance(action[1], int) else self.people[0]
        if kind == "link":
            yield up.command(user, "start")
            yield up.contact(user, phone=self.phone)
        elif kind == "forward":  # the first button each time (the way ahead), a photo if asked
            for _ in range(action[2]):
                if self.state(user) == "apply.evidence" and not self.evidence(user):
                    yield up.photo(user, f"walk-{user.id}")
                else:
                    yield up.press(user, self.genuine(user, 0), message_id=7)
        elif kind == "press":
            yield up.press(user, self.genuine(user, action[2]), message_id=7)
        elif kind == "tampered_press":  # the latest prompt's nonce with an index of one's own
            nonce = self.genuine(user, 0).partition(".")[0]
            index = action[2]
            if isinstance(index, int):  # past the end, or negative
                index = index + len(self.menu(user)) if index >= 0 else index
            yield up.press(user, f"{nonce}.{index}"[:64], message_id=7)
        elif kind == "forged_press":
            yield up.press(user, action[2], message_id=7)
        elif kind == "foreign_press":  # pressed by someone else in the customer's chat
            owner = self.people[action[2]]
            data = self.genuine(owner, 0)
            yield up.press(user, data, message_id=7, chat=owner.private_chat())
        elif kind == "text":
            yield up.text(user, action[2])
        elif kind == "command":
            yield up.command(user, action[2])
        elif kind == "photo":
            fields: dict[str, Any] = {"photo": action[2]}
            if action[3]:
                fields["media_group_id"] = f"album-{user.id}"
            yield up.message(user, **fields)
        elif kind == "document":
            yield up.message(user, document=action[2])
        elif kind == "media":
            yield up.message(user, **{action[2]: MEDIA[action[2]]})
        elif kind == "contact":
            phone = self.phone if action[2] == "own" else action[2]
            owner = {"own": -1, "other": user.id + 7, "none": None}[action[3]]
            yield up.contact(user, phone=phone or "0", owner=owner)
        elif kind == "edited":
            update = up.text(user, action[2])
            yield {"update_id": update["update_id"], "edited_message": update["message"]}
        elif kind == "forwarded":
            origin = {"type": "hidden_user", "date": 0, "sender_user_name": "某人"}
            yield up.text(user, action[2], forward_origin=origin)
        elif kind == "group":
            chat = GROUP_CHATS[action[2]]
            if chat["type"] == "channel":
                message = up.text(user, action[3], chat=chat)["message"]
                message.pop("from")
                yield {"update_id": up.next_id(), "channel_post": message}
            else:
                yield up.text(user, action[3], chat=chat)
                yield up.press(user, "d:claim:T20261124-0001", chat=chat)
        elif kind == "other_update":  # update types the bot does not ask for, or not know
            yield {"update_id": up.next_id(), action[1]: other_update(action[1], user)}

    def state(self, user: User) -> str:
        conv = self.harness.engine_app.engine.conversation(conversation_key(user.id))
        return f"{conv.flow}.{conv.state}" if conv is not None else ""

    def evidence(self, user: User) -> list[Any]:
        conv = self.harness.engine_app.engine.conversation(conversation_key(user.id))
        return list(conv.data.get("evidence", [])) if conv is not None else []

    def menu(self, user: User) -> list[Any]:
        conv = self.harness.engine_app.engine.conversation(conversation_key(user.id))
        menu = (conv.data.get("menu") if conv is not None else None) or {}
        return list(menu.get("items") or [])

    def genuine(self, user: User, index: int) -> str:
        """The token of one of the buttons the bot showed the customer last (if any)."""
        conv = self.harness.engine_app.engine.conversation(conversation_key(user.id))
        menu = (conv.data.get("menu") if conv is not None else None) or {}
        items = menu.get("items") or []
        return f"{menu.get('nonce', '000000')}.{index % len(items) if items else index}"


def other_update(kind: str, user: User) -> dict[str, Any]:
    """A minimal valid object of an update type outside ALLOWED_UPDATES (or a future one)."""
    sender = user.as_dict()
    chat = user.private_chat()
    bot = {"id": 123456, "is_bot": True, "first_name": "bot"}
    objects: dict[str, dict[str, Any]] = {
        "my_chat_member": {
            "chat": chat,
            "from": sender,
            "date": 0,
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0},
        },
        "message_reaction": {
            "chat": chat,
            "message_id": 1,
            "date": 0,
            "user": sender,
            "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        },
        "inline_query": {"id": "1", "from": sender, "query": "退款", "offset": ""},
        "chosen_inline_result": {"result_id": "r", "from": sender, "query": "退款"},
        "from_the_future": {"chat": chat, "from": sender, "something": [1, 2, 3]},
    }
    return objects[kind]


MEDIA: dict[str, dict[str, Any]] = {
    "video": {"file_id": "v", "file_unique_id": "uv", "width": 1, "height": 1, "duration": 3},
    "audio": {"file_id": "a", "file_unique_id": "ua", "duration": 3},
    "voice": {"file_id": "o", "file_unique_id": "uo", "duration": 3},
    "video_note": {"file_id": "n", "file_unique_id": "un", "length": 1, "duration": 3},
    "sticker": {
        "file_id": "s",
        "file_unique_id": "us",
        "type": "regular",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
    },
    "location": {"latitude": 31.23, "longitude": 121.47},
    "dice": {"emoji": "🎲", "value": 6},
}
GROUP_CHATS: dict[str, dict[str, Any]] = {
    "group": {"id": -4_242, "type": "group", "title": "闲聊"},
    "supergroup": {"id": -100_4242, "type": "supergroup", "title": "闲聊群"},
    "desk": FORUM,  # the agent desk's group, where the agent's commands are honoured
    "channel": {"id": -100_7777, "type": "channel", "title": "公告"},
}


class Errors(logging.Handler):
    """Error records of the bot's loggers: the adapter's error handler logs every failure."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def running_bot(config: Config) -> Iterator[tuple[asyncio.AbstractEventLoop, ShopHarness]]:
    loop = asyncio.new_event_loop()
    clock = FixedClock(NOW)
    # Telegram's rate limits (20 messages a minute into a group) are not what is tested here
    limiter = AIORateLimiter(overall_max_rate=0, group_max_rate=0)
    harness = ShopHarness(config, clock, FakeTelegram(clock.now), rate_limiter=limiter)
    try:
        loop.run_until_complete(harness.start(orders=()))
        yield loop, harness
    finally:
        loop.run_until_complete(harness.stop())
        loop.close()


def test_hostile_updates_never_escape_the_adapter_nor_leave_an_undeclared_state(
    tmp_path: Path,
) -> None:
    config = telegram_config(
        tmp_path,
        telegram={"incoming_rate_limit": 1000},  # the flood limit would hide the rest
        agent_desk={"chat_id": GROUP_ID, "agent_ids": [AGENT.id]},
    )
    errors = Errors()
    logging.getLogger("bot").addHandler(errors)
    catalog = default_catalog()
    apologies = {catalog.text(locale, "telegram.error") for locale in catalog.locales}
    try:
        with running_bot(config) as (loop, harness):
            tg = harness.tg
            flows = harness.engine_app.flows
            updates = Updates()

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(st.lists(actions, min_size=1, max_size=14))
            def check(batch: list[tuple[Any, ...]]) -> None:
                tg.clear()
                tg.refused.clear()
                errors.records.clear()
                walk = Walk(harness, updates)
                walk.begin()
                for action in batch:
                    loop.run_until_complete(walk.feed(action))
                loop.run_until_complete(harness.flush_albums())

                assert [r.getMessage() for r in errors.records] == []
                assert tg.refused == [], "the bot broke a Bot API limit"
                assert not apologies & set(tg.texts())
                assert len(tg.of("answerCallbackQuery")) >= walk.presses
                with closing(sqlite3.connect(config.store.path)) as db:
                    states = db.execute("SELECT flow, state FROM conversations").fetchall()
                assert [s for s in states if not flows.has_state(*s)] == []

            check()
    finally:
        logging.getLogger("bot").removeHandler(errors)

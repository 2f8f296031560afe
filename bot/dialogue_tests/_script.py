"""The YAML format of scripted dialogues (docs/dialogue-tests.md), validated with pydantic.

Every mapping forbids unknown keys, so a misspelt expectation is an error that names the script
and the step instead of a check that silently never runs.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.clock import SHANGHAI
from bot.domain import Priority, Reason, SubReason, TicketStatus
from bot.money import parse_yuan

DEMO_PHONE = "+8613800138000"


class ScriptError(Exception):
    """A script that cannot run: unreadable, not YAML, or not the format. Names file and step."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(f"{path}: {p}" for p in problems))
        self.path = path
        self.problems = problems


# -- YAML ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with two YAML 1.1 surprises taken out. Timestamps stay text: orders go to the
    JSON import as written, and `now: 2026-11-24 10:00` is Shanghai wall-clock time rather than
    naive UTC. Only true/false are booleans: `send: no` sends "no", it does not send False."""


_DROPPED = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def read_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


# -- values ----------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|K|MB|M)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000 * 1000, "mb": 1000 * 1000}
_MIB_UNITS = {"k": 1024, "kb": 1024, "m": 1024 * 1024, "mb": 1024 * 1024}


def parse_size(value: object) -> int:
    """Bytes from 150000, "150KB" or "25MB" (KB/MB are 1024-based, as the evidence limits are)."""
    if isinstance(value, bool):
        raise ValueError("must be a size like 150000, 150KB or 25MB")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"must be a size like 150000, 150KB or 25MB, not {value!r}")
    unit = (match.group(2) or "").lower()
    factor = _MIB_UNITS.get(unit, _UNITS[unit])
    return int(float(match.group(1)) * factor)


def parse_money(value: object) -> int:
    """Fen from 91.67, "91.67" or "¥91.67" (YAML numbers are written as the yuan they show)."""
    if isinstance(value, bool):
        raise ValueError("must be an amount in yuan, e.g. 91.67")
    try:
        return parse_yuan(str(value))
    except ValueError:
        raise ValueError(f"must be an amount in yuan, e.g. 91.67, not {value!r}") from None


_ADVANCE = re.compile(
    r"^\s*(\d+)\s*(working\s*days?|工作日|days?|d|天|hours?|h|小时|minutes?|mins?|m|分钟|"
    r"seconds?|s|秒)\s*$",
    re.IGNORECASE,
)


def parse_advance(text: str) -> timedelta | int:
    """A timedelta, or an int for that many Chinese working days ('3 working days')."""
    match = _ADVANCE.match(text)
    if match is None:
        raise ValueError(
            f"must be like '3 working days', '2 days', '2h', '30m' or '45s', not {text!r}"
        )
    count, unit = int(match.group(1)), match.group(2).lower().replace(" ", "")
    if unit.startswith("working") or unit == "工作日":
        return count
    if unit.startswith("d") or unit == "天":
        return timedelta(days=count)
    if unit.startswith("h") or unit == "小时":
        return timedelta(hours=count)
    if unit.startswith("m") or unit == "分钟":
        return timedelta(minutes=count)
    return timedelta(seconds=count)


def parse_now(value: object) -> datetime:
    """Shanghai wall-clock time from '2026-11-24 10:00' (an explicit offset is honoured)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"must be a time like 2026-11-24 10:00, not {value!r}") from None
    return moment.replace(tzinfo=SHANGHAI) if moment.tzinfo is None else moment


def _text_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _as_mapping(key: str) -> BeforeValidator:
    """Let a bare value stand for the usual mapping: `press: 申请退款` is `press: {label: …}`."""

    def convert(value: object) -> object:
        return {key: value} if isinstance(value, str | int) else value

    return BeforeValidator(convert)


Texts = Annotated[list[str], BeforeValidator(_text_list)]
Size = Annotated[int, BeforeValidator(parse_size)]
Money = Annotated[int, BeforeValidator(parse_money)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- steps -----------------------------------------------------------------------------------


class Press(_Strict):
    label: str | None = None  # the visible label (exact, or a part only one button has)
    data: str | None = None  # raw callback data, for forged presses
    stale: bool = False  # press it on an older message, not the latest keyboard

    @model_validator(mode="after")
    def _one(self) -> Press:
        if (self.label is None) == (self.data is None):
            raise ValueError("give either label or data")
        if self.stale and self.label is None:
            raise ValueError("stale needs a label")
        return self


class Photo(_Strict):
    name: str  # the file id; the same name again is the same file (a duplicate)
    size: Size = 150_000
    caption: str | None = None


class Document(_Strict):
    name: str  # the file name shown, e.g. 账单.pdf
    mime: str | None = None  # left out: Telegram sent none, the bot guesses from the name
    size: Size = 100_000
    caption: str | None = None
    id: str | None = None  # the file id (default: from the name)


class AlbumPart(_Strict):
    photo: Annotated[Photo | None, _as_mapping("name")] = None
    document: Document | None = None

    @model_validator(mode="after")
    def _one(self) -> AlbumPart:
        if (self.photo is None) == (self.document is None):
            raise ValueError("each album part is either a photo or a document")
        return self


class Contact(_Strict):
    phone: str | None = None  # default: the customer's own phone (given.customer.phone)
    # whose contact: the sender's own, another Telegram user's (id), or no Telegram user at all
    owner: Literal["self", "other", "none"] | int = "self"
    first_name: str = "张三"


def _contact(value: object) -> object:
    if value in ("own", "self"):
        return {}
    if value in ("other", "someone_else"):
        return {"owner": "other", "phone": "+8613900139000", "first_name": "李四"}
    return value


class Forward(_Strict):
    """A message the customer forwards from someone else's chat."""

    text: str | None = None
    contact: Annotated[Contact | None, BeforeValidator(_contact)] = None

    @model_validator(mode="after")
    def _one(self) -> Forward:
        if (self.text is None) == (self.contact is None):
            raise ValueError("forward either text or a contact")
        return self


class Agent(_Strict):
    """An agent (or anyone) acting in the agent desk supergroup."""

    send: str | None = None  # a message or command typed in the case's topic
    press: str | None = None  # a button on the latest desk message with buttons, by label
    photo: str | None = None  # a photo sent in the case's topic (its file name), with `caption`
    caption: str | None = None
    forward: str | None = None  # a text message forwarded into the case's topic from elsewhere
    as_: int | None = Field(default=None, alias="as")  # user id; default the first agent
    # which topic: left out = the newest case topic; "general" = outside any topic;
    # other text = the topic whose name contains it (e.g. a ticket number)
    topic: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Agent:
        acts = [a for a in (self.send, self.press, self.photo, self.forward) if a is not None]
        if len(acts) != 1:
            raise ValueError("an agent either sends, presses, sends a photo or forwards")
        if self.caption is not None and self.photo is None:
            raise ValueError("a caption belongs to a photo")
        return self


class TicketExpect(_Strict):
    number: str | None = None  # which ticket, e.g. T20261124-0001 (default: the newest)
    status: TicketStatus | None = None
    amount: Money | None = None  # the approved amount once approved, else the requested one
    requested: Money | None = None
    approved: Money | None = None
    priority: Priority | None = None
    reason: Reason | None = None
    sub_reason: SubReason | None = None
    review_due: date | None = None
    payout_due: date | None = None
    evidence: int | None = None  # files attached to the ticket
    appeals: int | None = None


class Expect(_Strict):
    reply: Texts | None = None  # every text appears in the customer's replies of the step
    reply_matches: Texts | None = None  # regular expressions (search)
    reply_lacks: Texts | None = None
    no_reply: bool = False
    buttons: list[str] | None = None  # exactly the buttons under the step's last reply
    buttons_include: list[str] | None = None
    answer: str | None = None  # the popup answering a press contains this
    desk: Texts | None = None  # messages to the agent desk during the step contain these
    desk_matches: Texts | None = None
    desk_buttons_include: list[str] | None = None
    no_desk: bool = False
    log: Texts | None = None  # a warning (or worse) logged during the step contains this
    state: str | None = None  # the customer's flow state, e.g. apply.evidence
    ticket: TicketExpect | None = None
    tickets: int | None = None  # how many tickets the customer has

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is not None and value.count(".") != 1:
            raise ValueError("must be flow.state, e.g. apply.evidence")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        if self.no_reply and (self.reply or self.reply_matches or self.buttons is not None):
            raise ValueError("no_reply cannot be combined with reply, reply_matches or buttons")
        if self.no_desk and (self.desk or self.desk_matches or self.desk_buttons_include):
            raise ValueError("no_desk cannot be combined with desk expectations")
        return self


ACTIONS = (
    "send",
    "press",
    "contact",
    "photo",
    "document",
    "album",
    "forward",
    "advance",
    "agent",
    "restart",
)


class Step(_Strict):
    send: str | None = None  # the customer types this (a leading / makes it a command)
    press: Annotated[Press | None, _as_mapping("label")] = None
    contact: Annotated[Contact | None, BeforeValidator(_contact)] = None
    photo: Annotated[Photo | None, _as_mapping("name")] = None
    document: Document | None = None
    album: list[AlbumPart] | None = Field(default=None, min_length=2)
    forward: Forward | None = None
    advance: str | None = None  # '3 working days', '2h', '30m'
    agent: Agent | None = None
    restart: Literal[True] | None = None
    note: str | None = None  # why the step is there; shown when it fails
    expect: Expect | None = None

    @field_validator("advance")
    @classmethod
    def _advance(cls, value: str | None) -> str | None:
        if value is not None:
            parse_advance(value)
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(actions) > 1:
            raise ValueError(f"one action per step, found {', '.join(actions)}")
        if not actions and self.expect is None:
            raise ValueError(f"a step needs an action ({', '.join(ACTIONS)}) or an expect")
        return self

    @property
    def action(self) -> str:
        return next((name for name in ACTIONS if getattr(self, name) is not None), "check")

    def describe(self) -> str:
        """A short description for reports: `press 「申请退款」`."""
        a = self.action
        if self.send is not None:
            return f"send {self.send!r}"
        if self.press is not None:
            what = f"「{self.press.label}」" if self.press.label else f"data {self.press.data!r}"
            return f"press {what}" + (" (stale)" if self.press.stale else "")
        if self.contact is not None:
            return f"share contact ({self.contact.owner})"
        if self.photo is not None:
            return f"photo {self.photo.name} ({self.photo.size} bytes)"
        if self.document is not None:
            doc = self.document
            return f"document {doc.name} ({doc.mime or 'no mime'}, {doc.size} bytes)"
        if self.album is not None:
            return f"album of {len(self.album)}"
        if self.forward is not None:
            return "forward " + ("text" if self.forward.text is not None else "a contact")
        if self.advance is not None:
            return f"advance {self.advance}"
        if self.agent is not None:
            who = f"user {self.agent.as_}" if self.agent.as_ is not None else "agent"
            if self.agent.send is not None:
                return f"{who} sends {self.agent.send!r} in the desk"
            if self.agent.photo is not None:
                return f"{who} sends photo {self.agent.photo} ({self.agent.caption!r}) in the desk"
            if self.agent.forward is not None:
                return f"{who} forwards {self.agent.forward!r} into the desk"
            return f"{who} presses 「{self.agent.press}」 in the desk"
        if self.restart:
            return "restart"
        return a


# -- the script ------------------------------------------------------------------------------


class Customer(_Strict):
    id: int = Field(default=1001, gt=0)  # Telegram user id (= private chat id)
    first_name: str = "张三"
    phone: str = DEMO_PHONE  # what `contact: own` shares


class Given(_Strict):
    now: Annotated[datetime, BeforeValidator(parse_now)]
    language: str | None = "zh-hans"  # the customer's Telegram client language (None: unset)
    demo: bool = False  # import the shipped demo orders (bot/data/demo-orders.json, unshifted)
    orders: list[dict[str, Any]] = Field(default_factory=list)  # in the import's JSON format
    orders_file: str | None = None  # .json or .csv, relative to the script
    config: dict[str, Any] = Field(default_factory=dict)  # deep-merged over config.yaml
    customer: Customer = Customer()
    # the years chinese-calendar is taken to cover (others: the config fallback), so that a script
    # does not depend on the installed release; None: whatever the installed release covers
    calendar_years: list[int] | None = None


class Script(_Strict):
    title: str | None = None
    description: str | None = None
    # An open bug this script shows: the script states the right behaviour and is expected to
    # fail a step until the bug is fixed; passing then is reported, so the mark gets removed.
    known_bug: str | None = None
    given: Given
    steps: list[Step] = Field(min_length=1)


# -- loading ---------------------------------------------------------------------------------


def _where(loc: tuple[int | str, ...], steps: list[Any]) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        index = parts[1]
        head = f"step {index + 1}"
        raw = steps[index] if index < len(steps) else None
        if isinstance(raw, dict):
            action = next((k for k in ACTIONS if k in raw), None)
            if action is not None:
                head += f" ({action})"
        rest = ".".join(str(p) for p in parts[2:])
        return f"{head}: {rest}" if rest else head
    return ".".join(str(p) for p in parts) or "(top level)"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        if not key.isascii():
            # `{reply: 你好,张三}`: YAML splits a flow mapping at the ASCII comma the catalogs use
            return "unknown key (a comma inside {…} or […] splits the text: quote it)"
        return "unknown key (check the spelling; see docs/dialogue-tests.md)"
    if error["type"] == "missing":
        return "is required"
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def parse_script(data: Any, path: Path) -> Script:
    """Validate loaded YAML; ScriptError lists every problem with its step."""
    if not isinstance(data, dict):
        raise ScriptError(path, ["a script is a mapping with `given` and `steps`"])
    raw_steps = data.get("steps")
    steps: list[Any] = raw_steps if isinstance(raw_steps, list) else []
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            # `extra_forbidden` names the unknown key as the last part of the location
            problems.append(f"{_where(loc, steps)}: {_message(error)}")
        raise ScriptError(path, problems) from None


def load_script(path: Path) -> Script:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(path, [f"cannot be read ({exc.strerror})"]) from None
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ScriptError(
            path, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]
        ) from None
    return parse_script(data, path)

"""Start: link the Telegram account to the shop customer who owns the orders."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from bot.dialogue import _render as render
from bot.dialogue._common import STEPS
from bot.engine import Turn, View
from bot.phone import normalise_phone

# as long as the shop's order ids may be (the model allows 1-64 characters)
_ORDER_NO = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


def _typed(turn: Turn) -> str:
    """The typed answer with full-width characters (a Chinese keyboard's ８０００) made ASCII."""
    return unicodedata.normalize("NFKC", turn.arg or "").strip()


@STEPS.condition("contact_is_own")
def contact_is_own(turn: Turn) -> bool:
    """Only the sender's own phone links: a forwarded or someone else's contact is refused."""
    contact, sender = turn.event.contact, turn.event.sender_id
    if contact is None or turn.event.forwarded:
        return turn.refuse("start.error.not_own_contact")
    # in the console there is no Telegram user id on either side: the console shares its own
    if contact.user_id != sender:
        return turn.refuse("start.error.not_own_contact")
    return True


@STEPS.condition("contact_has_orders")
def contact_has_orders(turn: Turn) -> bool:
    contact = turn.event.contact
    assert contact is not None  # contact_is_own ran first
    try:
        phone = normalise_phone(
            contact.phone if contact.phone.startswith("+") else "+" + contact.phone
        )
    except ValueError:
        return turn.refuse("start.error.bad_phone")
    customer = turn.uow.customer_by_phone(phone)
    if customer is None or not turn.uow.orders_of(customer.customer_id):
        return turn.refuse("start.error.no_orders")
    turn.data["link_customer_id"] = customer.customer_id
    return True


def _link(turn: Turn, customer_id: int) -> None:
    turn.conv.customer_id = customer_id
    sender = turn.event.sender
    if sender is not None:
        turn.uow.link_identity(customer_id, sender)
    customer = turn.require_customer()
    if customer.locale is not None and turn.conv.locale is None:
        turn.conv.locale = customer.locale
    elif customer.locale is None and turn.conv.locale is not None:
        turn.uow.set_customer_locale(customer_id, turn.conv.locale)
    turn.data.pop("link_failures", None)
    turn.say("start.linked", name=customer.name)


@STEPS.action("link_by_contact")
def link_by_contact(turn: Turn) -> None:
    _link(turn, int(turn.data.pop("link_customer_id")))


@STEPS.condition("link_attempts_exhausted")
def link_attempts_exhausted(turn: Turn) -> bool:
    """Whether the order-number check is paused for this chat; a pause that has run out starts
    the count over."""
    if int(turn.data.get("link_failures", 0)) < turn.config.dialogue.link_attempts:
        return False
    if turn.now < _lock_ends(turn):
        return True
    turn.data.pop("link_failures", None)
    turn.data.pop("link_locked_at", None)
    return False


def _lock_ends(turn: Turn) -> datetime:
    # a chat locked before the pause was recorded counts from now
    since = turn.data.setdefault("link_locked_at", turn.now.isoformat())
    minutes = turn.config.dialogue.link_lock_minutes
    return datetime.fromisoformat(str(since)) + timedelta(minutes=minutes)


@STEPS.view("link_lock")
def link_lock(turn: Turn) -> View:
    return View(params={"until": render.moment(_lock_ends(turn))})


@STEPS.condition("has_link_attempts_left")
def has_link_attempts_left(turn: Turn) -> bool:
    """Whether a failed attempt now still leaves another one."""
    return int(turn.data.get("link_failures", 0)) + 1 < turn.config.dialogue.link_attempts


@STEPS.condition("looks_like_order_no")
def looks_like_order_no(turn: Turn) -> bool:
    if not _ORDER_NO.match(_typed(turn)):
        return turn.refuse("start.error.order_no_format")
    return True


@STEPS.action("remember_order_no")
def remember_order_no(turn: Turn) -> None:
    turn.data["link_order_no"] = _typed(turn)


@STEPS.condition("is_four_digits")
def is_four_digits(turn: Turn) -> bool:
    if not re.fullmatch(r"[0-9]{4}", _typed(turn)):
        return turn.refuse("start.error.last4_format")
    return True


@STEPS.condition("order_and_last4_match")
def order_and_last4_match(turn: Turn) -> bool:
    typed = str(turn.data.get("link_order_no", ""))
    # ids are stored as the shop exported them; customers often type them in another case
    order = next((o for o in map(turn.uow.order, (typed, typed.upper(), typed.lower())) if o), None)
    # the same answer whether the order is unknown, the digits are wrong or the order's own
    # checks are paused (guessed at from other accounts): no enumeration
    if order is None:
        return False
    if _order_paused(turn, order.order_id) or not order.phone.endswith(_typed(turn) or "-"):
        turn.data["link_order_id"] = order.order_id  # counted against the order as well
        return False
    customer = turn.uow.customer_by_phone(order.phone)
    if customer is None:
        return False
    turn.uow.clear_link_failures(order.order_id)
    turn.data["link_customer_id"] = customer.customer_id
    return True


def _order_paused(turn: Turn, order_id: str) -> bool:
    """Whether this order's checks are paused after too many failures across accounts."""
    _, locked_at = turn.uow.link_failures(order_id)
    if locked_at is None:
        return False
    if turn.now < locked_at + timedelta(minutes=turn.config.dialogue.link_lock_minutes):
        return True
    turn.uow.clear_link_failures(order_id)  # the pause ran out: its count starts over
    return False


@STEPS.action("link_by_order")
def link_by_order(turn: Turn) -> None:
    turn.data.pop("link_order_no", None)
    _link(turn, int(turn.data.pop("link_customer_id")))


@STEPS.action("count_failed_link")
def count_failed_link(turn: Turn) -> None:
    failures = int(turn.data.get("link_failures", 0)) + 1
    turn.data["link_failures"] = failures
    order_id = turn.data.pop("link_order_id", None)
    if order_id is not None:
        limit = turn.config.dialogue.link_attempts_per_order
        turn.uow.record_link_failure(str(order_id), turn.now, limit)
    if failures >= turn.config.dialogue.link_attempts:
        turn.data["link_locked_at"] = turn.now.isoformat()
    turn.data.pop("link_order_no", None)
    left = turn.config.dialogue.link_attempts - failures
    if left > 0:
        turn.say("start.error.no_match", left=left)

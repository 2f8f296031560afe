"""Start / link account: the customer's own contact, or order number + last 4 phone digits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.app import App
from bot.clock import FixedClock
from bot.engine import ContactInfo, Kind
from bot.orders_import import import_orders
from bot.store import Identity
from tests.engine.conftest import Chat, another_chat
from tests.factories import make_order


def linked_customer(app: App, user_id: int) -> int | None:
    with app.store.unit_of_work() as uow:
        customer = uow.customer_by_identity(Identity("telegram", str(user_id)))
        return None if customer is None else customer.customer_id


def test_a_new_customer_is_greeted_with_both_ways_to_link(chat: Chat) -> None:
    chat.command("start")
    assert chat.state == "start.welcome"
    assert chat.last.replies[-1].key == "start.welcome"
    first = chat.last.replies[-1].buttons[0]
    assert first.request_contact and first.token == ""
    assert chat.buttons() == ["📱 分享手机号", "用订单号验证"]


def test_sharing_ones_own_contact_links_and_shows_the_menu(chat: Chat, app: App) -> None:
    chat.command("start")
    chat.share_contact()
    assert chat.state == "menu.main"
    assert [r.key for r in chat.last.replies] == ["start.linked", "menu.main"]
    assert "张三" in chat.text
    assert chat.buttons() == ["申请退款", "我的售后", "English"]
    assert linked_customer(app, chat.user_id) is not None


def test_a_contact_without_plus_is_normalised(chat: Chat) -> None:
    chat.command("start")
    chat.share_contact(phone="8613800138000")
    assert chat.state == "menu.main"


@pytest.mark.parametrize("owner", [999, None], ids=["someone-else", "not-a-telegram-user"])
def test_someone_elses_contact_is_refused_and_nothing_linked(
    chat: Chat, app: App, owner: int | None
) -> None:
    chat.command("start")
    chat.share_contact(user_id=owner)
    assert chat.state == "start.welcome"
    assert chat.last.replies[0].key == "start.error.not_own_contact"
    assert linked_customer(app, chat.user_id) is None
    conv = app.engine.conversation(chat.key)
    assert conv is not None and conv.customer_id is None


def test_a_forwarded_contact_is_refused_even_with_the_senders_id(chat: Chat, app: App) -> None:
    chat.command("start")
    chat.send(Kind.CONTACT, contact=ContactInfo("+8613800138000", chat.user_id), forwarded=True)
    assert chat.state == "start.welcome"
    assert chat.last.replies[0].key == "start.error.not_own_contact"
    assert linked_customer(app, chat.user_id) is None


def test_a_phone_with_no_orders_is_told_so(chat: Chat, app: App) -> None:
    chat.command("start")
    chat.share_contact(phone="+8613700000000")
    assert chat.state == "start.welcome"
    assert chat.last.replies[0].key == "start.error.no_orders"
    assert linked_customer(app, chat.user_id) is None


def test_a_malformed_phone_is_refused(chat: Chat) -> None:
    chat.command("start")
    chat.share_contact(phone="12345")
    assert chat.state == "start.welcome"
    assert chat.last.replies[0].key == "start.error.bad_phone"


def test_order_number_and_last_four_digits_link(chat: Chat, app: App) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    assert chat.state == "start.ask_order_no"
    chat.type("M1")
    assert chat.state == "start.ask_last4"
    chat.type("8000")
    assert chat.state == "menu.main"
    assert chat.last.replies[0].key == "start.linked"
    assert linked_customer(app, chat.user_id) is not None
    conv = app.engine.conversation(chat.key)
    assert conv is not None
    assert "link_order_no" not in conv.data and "link_customer_id" not in conv.data


@pytest.mark.parametrize("typed", ["xn-lower-7", "XN-LOWER-7", " xn-lower-7 "])
def test_the_order_number_is_found_however_its_case_is_typed(
    chat: Chat, app: App, typed: str
) -> None:
    import_orders(app.store, [make_order(order_id="xn-lower-7")])
    chat.command("start")
    chat.press("用订单号验证")
    chat.type(typed)
    chat.type("8000")
    assert chat.state == "menu.main", chat.text


@pytest.mark.parametrize(
    "typed",
    ["", "订单", "V1 V2", "V1;DROP", "X" * 65, "V1/2"],
    ids=["empty", "chinese", "space", "punctuation", "too-long", "slash"],
)
def test_a_badly_formed_order_number_is_refused_without_counting(
    chat: Chat, app: App, typed: str
) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    for _ in range(app.config.dialogue.link_attempts + 1):
        chat.type(typed)
        assert chat.state == "start.ask_order_no"
        assert chat.last.replies[0].key == "start.error.order_no_format"
    conv = app.engine.conversation(chat.key)
    assert conv is not None and "link_failures" not in conv.data


@pytest.mark.parametrize("typed", ["800", "80000", "abcd", "", "80 0", "-800"])
def test_last_four_must_be_four_digits(chat: Chat, typed: str) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    chat.type("V1")
    chat.type(typed)
    assert chat.state == "start.ask_last4"
    assert chat.last.replies[0].key == "start.error.last4_format"
    chat.type("8000")
    assert chat.state == "menu.main"


def test_unknown_order_and_wrong_digits_get_the_same_answer(app: App) -> None:
    unknown, wrong = Chat(app, user_id=5001), Chat(app, user_id=5002)
    for c, order_no in ((unknown, "NO-SUCH-ORDER"), (wrong, "V1")):
        c.command("start")
        c.press("用订单号验证")
        c.type(order_no)
        c.type("1234")
    assert unknown.state == wrong.state == "start.ask_order_no"
    assert [r.key for r in unknown.last.replies] == [r.key for r in wrong.last.replies]
    assert unknown.text == wrong.text
    assert "还可以尝试 4 次" in wrong.text


def test_wrong_digits_count_down_and_lock_after_the_configured_attempts(
    chat: Chat, app: App
) -> None:
    attempts = app.config.dialogue.link_attempts
    chat.command("start")
    chat.press("用订单号验证")
    for failure in range(1, attempts):
        chat.type("V1")
        chat.type("1111")
        assert chat.state == "start.ask_order_no"
        assert f"还可以尝试 {attempts - failure} 次" in chat.text
    chat.type("V1")
    chat.type("1111")
    assert chat.state == "start.locked"
    assert chat.last.replies[-1].key == "start.locked"
    assert "用订单号验证" not in chat.buttons()
    # the right digits no longer help: the order-number way stays closed, even after /start
    chat.command("start")
    chat.press("用订单号验证")
    assert chat.state == "start.locked"
    chat.type("V1")
    assert chat.state == "start.locked"
    assert linked_customer(app, chat.user_id) is None
    # the customer's own phone still works
    chat.share_contact()
    assert chat.state == "menu.main"


def test_the_lock_says_when_it_ends_and_lifts_after_the_configured_pause(
    chat: Chat, app: App, clock: FixedClock
) -> None:
    attempts = app.config.dialogue.link_attempts
    chat.command("start")
    chat.press("用订单号验证")
    for _ in range(attempts):
        chat.type("V1")
        chat.type("1111")
    assert chat.state == "start.locked"
    assert "2026-11-24 11:00 后可以再试" in chat.text  # locked at 10:00, 60 minutes
    assert "分享手机号" in chat.text and "转人工" in chat.text  # how the real owner gets in
    clock.advance(timedelta(minutes=59))
    chat.command("start")
    chat.press("用订单号验证")
    assert chat.state == "start.locked"
    clock.advance(timedelta(minutes=1))
    chat.command("start")
    chat.press("用订单号验证")
    assert chat.state == "start.ask_order_no"
    chat.type("V1")
    chat.type("1111")  # the count started over: four more tries, not a lock at once
    assert f"还可以尝试 {attempts - 1} 次" in chat.text
    chat.type("V1")
    chat.type("8000")
    assert chat.state == "menu.main"


def test_a_correct_attempt_after_failures_links_and_clears_the_counter(
    chat: Chat, app: App
) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    chat.type("V1")
    chat.type("1111")
    chat.type("V1")
    chat.type("8000")
    assert chat.state == "menu.main"
    conv = app.engine.conversation(chat.key)
    assert conv is not None and "link_failures" not in conv.data


def test_linking_by_order_number_finds_the_owner_not_the_sender(app: App) -> None:
    stranger = Chat(app, user_id=7007)
    stranger.command("start")
    stranger.press("用订单号验证")
    stranger.type("X1")
    stranger.type("9000")
    assert stranger.state == "menu.main"
    assert "李四" in stranger.text
    stranger.command("refund")
    assert [b for b in stranger.buttons() if "别人的年卡" in b]
    assert not [b for b in stranger.buttons() if "星河" in b]


def test_a_linked_customer_starts_at_the_menu_next_time(app: App, chat: Chat) -> None:
    chat.link()
    again = another_chat(chat, "another-chat")
    again.command("help")
    assert again.state == "menu.main"


def test_the_unlinked_cannot_apply_or_see_tickets(chat: Chat) -> None:
    for command in ("refund", "status"):
        chat.command(command)
        assert chat.state == "start.welcome"
        assert chat.last.replies[0].key == "common.not_linked"
    chat.command("cancel")
    assert chat.state == "start.welcome"


def test_full_width_digits_from_a_chinese_keyboard_are_understood(chat: Chat) -> None:
    chat.command("start")
    chat.press("用订单号验证")
    chat.type("Ｍ１")
    assert chat.state == "start.ask_last4"
    chat.type("８０００")
    assert chat.state == "menu.main", chat.text


def test_one_order_pauses_after_failures_across_accounts_without_revealing_it(
    app: App, clock: FixedClock
) -> None:
    """A new account does not get five more guesses at the same order."""
    per_order = app.config.dialogue.link_attempts_per_order
    per_account = app.config.dialogue.link_attempts
    guessers = [Chat(app, user_id=5000 + n) for n in range(-(-per_order // per_account))]
    failures = 0
    for guesser in guessers:
        guesser.command("start")
        guesser.press("用订单号验证")
        while failures < per_order and guesser.state != "start.locked":
            guesser.type("V1")
            guesser.type("1111")
            failures += 1
    owner = Chat(app, user_id=7777)
    owner.command("start")
    owner.press("用订单号验证")
    owner.type("V1")
    owner.type("8000")  # the right digits, on a paused order: the same answer as wrong ones
    assert owner.state == "start.ask_order_no"
    assert owner.last.replies[0].key == "start.error.no_match"
    assert linked_customer(app, owner.user_id) is None
    owner.command("start")
    owner.share_contact()  # the real owner's phone still links at once
    assert owner.state == "menu.main"
    late = Chat(app, user_id=7778)
    clock.advance(timedelta(minutes=app.config.dialogue.link_lock_minutes))
    late.command("start")
    late.press("用订单号验证")
    late.type("V1")
    late.type("8000")  # the pause ran out: the order's count started over
    assert late.state == "menu.main"

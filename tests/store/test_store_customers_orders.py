"""Store contract: customers, Telegram links and orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from bot.clock import SHANGHAI
from bot.domain import MerchantStatus, PaymentChannel, RefundState
from bot.store import Identity, NotFound, RefundExceedsCashPaid, Store

if TYPE_CHECKING:
    from conftest import Make

PHONE = "+8613800138000"
OTHER_PHONE = "+8613900139000"


def test_upsert_customer_creates_then_renames_the_same_customer(store: Store) -> None:
    with store.unit_of_work() as uow:
        first = uow.upsert_customer(PHONE, "张三")
        again = uow.upsert_customer(PHONE, "张三丰")
        other = uow.upsert_customer(OTHER_PHONE, "李四")
    assert again.customer_id == first.customer_id
    assert again.name == "张三丰"
    assert other.customer_id != first.customer_id
    with store.unit_of_work() as uow:
        assert uow.customer(first.customer_id) == again
        assert uow.customer_by_phone(PHONE) == again
        assert uow.customer_by_phone(OTHER_PHONE) == other


def test_unknown_customer_is_none(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.customer(12345) is None
        assert uow.customer_by_phone(PHONE) is None
        assert uow.customer_by_identity(Identity("telegram", "777")) is None


@pytest.mark.parametrize("phone", ["13800138000", "+86 138 0013 8000", "+0123", "", "+86138\n"])
def test_phone_must_be_e164(store: Store, phone: str) -> None:
    with store.unit_of_work() as uow, pytest.raises(ValueError, match=r"E\.164"):
        uow.upsert_customer(phone, "张三")


def test_link_telegram_finds_the_customer_and_relinking_moves_it(store: Store) -> None:
    with store.unit_of_work() as uow:
        zhang = uow.upsert_customer(PHONE, "张三")
        li = uow.upsert_customer(OTHER_PHONE, "李四")
        uow.link_identity(zhang.customer_id, Identity("telegram", "1001"))
        uow.link_identity(
            zhang.customer_id, Identity("telegram", "1002")
        )  # a second Telegram account of the same person
    with store.unit_of_work() as uow:
        assert uow.customer_by_identity(Identity("telegram", "1001")) == zhang
        assert uow.customer_by_identity(Identity("telegram", "1002")) == zhang
        uow.link_identity(li.customer_id, Identity("telegram", "1001"))
    with store.unit_of_work() as uow:
        assert uow.customer_by_identity(Identity("telegram", "1001")) == li
        assert uow.customer_by_identity(Identity("telegram", "1002")) == zhang


def test_link_telegram_to_unknown_customer_is_not_found(store: Store) -> None:
    with store.unit_of_work() as uow, pytest.raises(NotFound):
        uow.link_identity(999, Identity("telegram", "1001"))


def test_set_customer_locale(store: Store) -> None:
    with store.unit_of_work() as uow:
        customer = uow.upsert_customer(PHONE, "张三")
        uow.set_customer_locale(customer.customer_id, "en")
    with store.unit_of_work() as uow:
        found = uow.customer(customer.customer_id)
        assert found is not None
        assert found.locale == "en"
        uow.set_customer_locale(customer.customer_id, None)
        found = uow.customer(customer.customer_id)
        assert found is not None
        assert found.locale is None
        with pytest.raises(NotFound):
            uow.set_customer_locale(999, "en")


def test_order_round_trips_every_field_with_aware_datetimes(store: Store, make: Make) -> None:
    order = make.order(
        activated_at=make.order().paid_at + timedelta(hours=1, microseconds=7),
        activation_exclusion_confirmed=True,
        used_days=2,
        payment_channel=PaymentChannel.BANK_CARD,
        seven_day_supported=False,
        merchant_status=MerchantStatus.UNREACHABLE,
        coupon_refundable=False,
    )
    with store.unit_of_work() as uow:
        uow.upsert_order(order)
    with store.unit_of_work() as uow:
        stored = uow.order(order.order_id)
    assert stored == order
    assert stored is not None
    for moment in (stored.paid_at, stored.service_start, stored.service_end, stored.activated_at):
        assert moment is not None
        assert moment.utcoffset() == timedelta(0)  # aware, in UTC
    assert stored.activated_at == order.activated_at


def test_upsert_order_creates_its_customer(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order(phone=OTHER_PHONE, customer_name="王五"))
    with store.unit_of_work() as uow:
        customer = uow.customer_by_phone(OTHER_PHONE)
    assert customer is not None
    assert customer.name == "王五"


def test_upsert_order_updates_an_existing_order(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order())
        uow.upsert_order(make.order(product_name="爱奇艺黄金会员年卡", used_days=30))
    with store.unit_of_work() as uow:
        stored = uow.order("O1")
        assert stored is not None
        assert (stored.product_name, stored.used_days) == ("爱奇艺黄金会员年卡", 30)
        customer = uow.customer_by_phone(PHONE)
        assert customer is not None
        assert len(uow.orders_of(customer.customer_id)) == 1


def test_unknown_order_is_none(store: Store) -> None:
    with store.unit_of_work() as uow:
        assert uow.order("nope") is None


def test_orders_of_a_customer_only_theirs_newest_first(store: Store, make: Make) -> None:
    base = make.order()
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order("O-old", paid_at=base.paid_at - timedelta(days=30)))
        uow.upsert_order(make.order("O-new", paid_at=base.paid_at))
        uow.upsert_order(make.order("O-other", phone=OTHER_PHONE, customer_name="李四"))
        zhang = uow.customer_by_phone(PHONE)
        li = uow.customer_by_phone(OTHER_PHONE)
        assert zhang is not None
        assert li is not None
        assert [o.order_id for o in uow.orders_of(zhang.customer_id)] == ["O-new", "O-old"]
        assert [o.order_id for o in uow.orders_of(li.customer_id)] == ["O-other"]
        assert uow.orders_of(999) == []


def test_order_times_given_in_any_zone_come_back_as_the_same_instant(
    store: Store, make: Make
) -> None:
    shanghai_midnight = make.order().paid_at.astimezone(SHANGHAI).replace(hour=0, minute=0)
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order(paid_at=shanghai_midnight))
    with store.unit_of_work() as uow:
        stored = uow.order("O1")
    assert stored is not None
    assert stored.paid_at == shanghai_midnight
    assert stored.paid_at.astimezone(SHANGHAI).hour == 0


def test_reimport_cannot_lower_cash_paid_below_refunds(store: Store, make: Make) -> None:
    with store.unit_of_work() as uow:
        make.seed_ticket(uow)
        uow.add_refund(make.refund("k1", 6_000, state=RefundState.PAID))
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order(cash_paid_fen=6_000))  # exactly what was refunded: fine
        with pytest.raises(RefundExceedsCashPaid):
            uow.upsert_order(make.order(cash_paid_fen=5_999))
        stored = uow.order("O1")
        assert stored is not None
        assert stored.cash_paid_fen == 6_000


def test_failed_order_checks_count_across_calls_and_lock_at_the_limit(
    store: Store, make: Make
) -> None:
    now = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    with store.unit_of_work() as uow:
        uow.upsert_order(make.order("O9"))
        assert uow.link_failures("O9") == (0, None)
        assert [uow.record_link_failure("O9", now, 3) for _ in range(2)] == [1, 2]
        assert uow.link_failures("O9") == (2, None)
    with store.unit_of_work() as uow:  # another unit of work, as another account's turn
        assert uow.record_link_failure("O9", now, 3) == 3
        assert uow.link_failures("O9") == (3, now)
        later = now + timedelta(minutes=5)
        assert uow.record_link_failure("O9", later, 3) == 4
        assert uow.link_failures("O9") == (4, now)  # locked from the third, not moved on
        uow.clear_link_failures("O9")
        assert uow.link_failures("O9") == (0, None)


def test_an_order_read_twice_in_a_unit_of_work_sees_its_own_upsert(
    store: Store, make: Make
) -> None:
    """A unit of work reads an order once; its own upsert (an import) is read back, not the
    first read."""
    with store.unit_of_work() as uow:
        assert uow.order("O1") is None
        uow.upsert_order(make.order("O1"))
        first = uow.order("O1")
        assert first is not None and first.cash_paid_fen == make.order("O1").cash_paid_fen
        changed = first.model_copy(update={"product_name": "另一张年卡"})
        uow.upsert_order(changed)
        assert uow.order("O1") == changed
    with store.unit_of_work() as uow:
        assert uow.order("O1") == changed

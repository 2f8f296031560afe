"""Composition root: build everything from a config. Production, the console and the tests all
come through here, the tests passing a fixed clock or another store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bot.calendar import WorkingCalendar
from bot.clock import Clock, SystemClock, to_local
from bot.config import Config
from bot.dialogue import STEPS
from bot.domain import Order
from bot.engine import Engine, FlowSet, load_flows
from bot.engine._flows import FLOWS_DIR
from bot.i18n import Catalog, default_catalog
from bot.orders_import import ImportSummary, import_orders, parse_orders
from bot.store import Store, open_store

DEMO_ORDERS = Path(__file__).resolve().parent / "data" / "demo-orders.json"
DEMO_TODAY = date(2026, 11, 24)  # the day the demo orders were written for
DEMO_PHONE = "+8613800138000"


@dataclass
class App:
    config: Config
    store: Store
    engine: Engine
    flows: FlowSet
    catalog: Catalog
    calendar: WorkingCalendar
    clock: Clock

    def close(self) -> None:
        self.store.close()


def load_dialogue(
    catalog: Catalog | None = None, flows_dir: Path = FLOWS_DIR
) -> tuple[FlowSet, Catalog]:
    """The flows and catalogs, validated together (FlowError if a flow is wrong)."""
    catalog = catalog or default_catalog()
    return load_flows(STEPS, catalog.keys(), flows_dir), catalog


def build_app(
    config: Config,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    calendar: WorkingCalendar | None = None,
) -> App:
    """Wire config, store, calendar, flows and engine."""
    flows, catalog = load_dialogue()
    calendar = calendar or WorkingCalendar(
        config.calendar.fallback_holidays, config.calendar.fallback_workdays
    )
    clock = clock or SystemClock()
    store = store or open_store(
        config.store.target, clock, busy_timeout_ms=config.store.busy_timeout_ms
    )
    engine = Engine(
        flows=flows,
        registry=STEPS,
        catalog=catalog,
        store=store,
        config=config,
        calendar=calendar,
        clock=clock,
    )
    return App(config, store, engine, flows, catalog, calendar, clock)


def shifted_demo_orders(today: date) -> list[Order]:
    """The demo orders moved by whole days so that 'bought three days ago' stays true."""
    parsed = parse_orders(DEMO_ORDERS)
    if not parsed.ok:
        raise RuntimeError(f"demo orders do not parse: {parsed.errors[0]}")
    delta = timedelta(days=(today - DEMO_TODAY).days)
    shifted = []
    for order in parsed.orders:
        update = {
            name: getattr(order, name) + delta
            for name in ("paid_at", "service_start", "service_end", "activated_at")
            if getattr(order, name) is not None
        }
        shifted.append(order.model_copy(update=update))
    return shifted


def ensure_demo_orders(app: App) -> ImportSummary | None:
    """Load the demo orders into an empty store (the console's first run)."""
    with app.store.unit_of_work() as uow:
        if uow.customer_by_phone(DEMO_PHONE) is not None:
            return None
    return import_orders(app.store, shifted_demo_orders(to_local(app.clock.now()).date()))

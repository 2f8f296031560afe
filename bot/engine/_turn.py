"""The model the flow machines move: one inbound event, its conversation and its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.calendar import WorkingCalendar
from bot.config import Config
from bot.domain import Customer, Refusal
from bot.engine._effects import Effect
from bot.engine._events import Inbound
from bot.i18n import Catalog
from bot.store import Conversation, UnitOfWork


@dataclass(frozen=True)
class Services:
    """What callbacks may use besides the transaction: configuration, calendar, texts."""

    config: Config
    calendar: WorkingCalendar
    catalog: Catalog


class Turn:
    """One inbound event being handled. `state` is what transitions reads and writes."""

    def __init__(
        self,
        *,
        state: str,
        conv: Conversation,
        uow: UnitOfWork,
        event: Inbound,
        now: datetime,
        services: Services,
    ) -> None:
        self.state = state
        self.conv = conv
        self.uow = uow
        self.event = event
        self.now = now
        self.services = services
        self.arg: str | None = None  # the pressed button's argument, or the typed text
        self.error: tuple[str, dict[str, Any]] | None = None
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.effects: list[Effect] = []
        self._customer: Customer | None = None
        # values derived from conv.data, kept for the rest of the turn with the raw value they came
        # from, so that several callbacks of one turn validate the same stored data once
        self.memo: dict[str, tuple[object, Any]] = {}

    @property
    def data(self) -> dict[str, Any]:
        """The conversation's saved data (flow scratch space)."""
        return self.conv.data

    @property
    def locale(self) -> str:
        return turn_locale(self.conv, self.services.catalog)

    def t(self, key: str, **params: Any) -> str:
        """The text of a message key in the customer's language."""
        return self.services.catalog.text(self.locale, key, params)

    @property
    def config(self) -> Config:
        return self.services.config

    @property
    def customer(self) -> Customer | None:
        if self._customer is None and self.conv.customer_id is not None:
            self._customer = self.uow.customer(self.conv.customer_id)
        return self._customer

    def require_customer(self) -> Customer:
        customer = self.customer
        if customer is None:
            raise Refusal("common.not_linked")
        return customer

    def say(self, key: str, **params: Any) -> None:
        """Queue a message shown before the state's prompt."""
        self.notes.append((key, params))

    def refuse(self, key: str, **params: Any) -> bool:
        """For conditions: explain why not, and return False."""
        self.error = (key, params)
        return False

    def effect(self, effect: Effect) -> None:
        self.effects.append(effect)


def turn_locale(conv: Conversation, catalog: Catalog) -> str:
    """The customer's chosen language, else their client's, else the default."""
    return conv.locale or str(conv.data.get("client_locale") or catalog.default)

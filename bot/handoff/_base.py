"""What every part of the desk shares: its context, its texts, who may act, when a person has a
chat. Kept apart from the Desk service so that the actions need not import the service."""

from __future__ import annotations

from bot.handoff._card import Texts
from bot.handoff._model import DeskContext
from bot.store import Conversation


class DeskBase:
    """The agent desk over one context; `channel` names where the agents' chat lives."""

    def __init__(self, ctx: DeskContext, channel: str) -> None:
        self.ctx = ctx
        self.channel = channel
        self.settings = ctx.config.agent_desk
        self.texts = Texts(ctx.catalog, ctx.config.locale, ctx.config)
        flows = ctx.engine.flows
        # the states in which a person has the chat (the flows mark them quiet)
        self._quiet = frozenset((f, s) for f, s in flows.all_states() if flows.state(f, s).quiet)

    def is_agent(self, user_id: int) -> bool:
        return user_id in self.settings.agent_ids

    @property
    def chat_id(self) -> int | None:
        return self.settings.chat_id

    def refusal(self, user_id: int, chat_id: int | None) -> str | None:
        """Why this person may not act here (None: an agent in the agent chat)."""
        if not self.is_agent(user_id):
            return self.texts.t("desk.error.not_agent")
        if self.settings.chat_id is None:
            return self.texts.t("desk.error.no_desk")
        if chat_id != self.settings.chat_id:
            return self.texts.t("desk.error.not_desk_chat")
        return None

    def with_person(self, conv: Conversation) -> bool:
        return (conv.flow, conv.state) in self._quiet

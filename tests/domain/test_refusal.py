"""The one refusal type: a key and parameters, rendered by whoever catches it."""

from __future__ import annotations

from bot.domain import Refusal
from bot.i18n import default_catalog


def test_a_refusal_renders_in_the_readers_language_with_its_extra_lines() -> None:
    catalog = default_catalog()
    refusal = Refusal("agent.error.amount_above_cap").plus("desk.error.cap", cap_fen=9167)

    def zh(key: str, **params: object) -> str:
        return catalog.text("zh-CN", key, params)

    def en(key: str, **params: object) -> str:
        return catalog.text("en", key, params)

    assert refusal.text(zh) == zh("agent.error.amount_above_cap") + zh(
        "desk.error.cap", cap_fen=9167
    )
    assert "91.67" in refusal.text(zh) and "91.67" in refusal.text(en)
    assert refusal.text(zh) != refusal.text(en)
    assert (refusal.key, refusal.params) == ("agent.error.amount_above_cap", {})

"""Flow coverage: which declared states the scripts visited and which transitions they fired.

Recorded from the engine's own `TurnResult` (`fired` is the (flow, source, trigger, dest) of the
transition a turn took), so what counts is what the engine did, not what a script claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.engine import Engine, FlowSet, TurnResult
from bot.engine._flows import split_target

Edge = tuple[str, str, str, str]  # (flow, source, trigger, dest) as FlowSet.all_transitions
GlobalEdge = tuple[str, str]  # (trigger, dest) of a global transition; dest "" = stays put

THRESHOLD = 0.90  # the share of transitions CI requires (SPEC §5, issue 6)


@dataclass
class Coverage:
    """What a set of script runs visited and fired; runs merge by union."""

    states: set[tuple[str, str]] = field(default_factory=set)
    fired: set[Edge] = field(default_factory=set)

    def record(self, result: TurnResult) -> None:
        if result.duplicate:
            return
        if result.flow:
            self.states.add((result.flow, result.state))
        if result.fired is not None:
            flow, source, _, _ = result.fired
            self.states.add((flow, source))
            self.fired.add(result.fired)

    def merge(self, other: Coverage) -> None:
        self.states |= other.states
        self.fired |= other.fired

    def attach(self, engine: Engine) -> None:
        """Record every turn the engine runs, whoever asked for it (adapter, desk, jobs)."""
        # The engine has no observer hook and bot/engine is not ours to change; wrapping the
        # bound methods on this one instance catches customer turns (`handle`, which reminders go
        # through too) and the agent desk's events, run inside its own unit of work
        # (`handle_in`). Neither calls the other, so no turn is counted twice.
        for name in ("handle", "handle_in"):
            method: Callable[..., TurnResult] | None = getattr(engine, name, None)
            if method is not None:
                setattr(engine, name, self._recording(method))

    def _recording(self, method: Callable[..., TurnResult]) -> Callable[..., TurnResult]:
        def recording(*args: Any, **kwargs: Any) -> TurnResult:
            result = method(*args, **kwargs)
            self.record(result)
            return result

        return recording


@dataclass(frozen=True)
class FlowFigures:
    name: str
    states: list[str]
    states_covered: list[str]
    transitions: list[Edge]
    transitions_covered: list[Edge]

    @property
    def uncovered_states(self) -> list[str]:
        return [s for s in self.states if s not in self.states_covered]

    @property
    def uncovered_transitions(self) -> list[Edge]:
        return [t for t in self.transitions if t not in self.transitions_covered]


@dataclass(frozen=True)
class Report:
    flows: list[FlowFigures]
    globals_all: list[GlobalEdge]
    globals_covered: list[GlobalEdge]

    @property
    def states(self) -> tuple[int, int]:
        return (
            sum(len(f.states_covered) for f in self.flows),
            sum(len(f.states) for f in self.flows),
        )

    @property
    def transitions(self) -> tuple[int, int]:
        return (
            sum(len(f.transitions_covered) for f in self.flows),
            sum(len(f.transitions) for f in self.flows),
        )

    @property
    def all_transitions(self) -> tuple[int, int]:
        """The flows' own transitions and the global ones (cancel, agent, desk events…) together."""
        covered, total = self.transitions
        return covered + len(self.globals_covered), total + len(self.globals_all)

    def problems(self, threshold: float = THRESHOLD) -> list[str]:
        """Why CI should fail: an unvisited state, or transitions under the threshold."""
        found = [
            f"state {f.name}.{s} is never visited" for f in self.flows for s in f.uncovered_states
        ]
        covered, total = self.all_transitions
        if total and covered / total < threshold:
            found.append(
                f"transitions covered {covered}/{total} ({covered / total:.1%}), "
                f"below {threshold:.0%}"
            )
        return found

    def lines(self) -> list[str]:
        out = ["Flow coverage (states visited, transitions fired):"]
        width = max(len(f.name) for f in self.flows) if self.flows else 6
        for f in self.flows:
            out.append(
                f"  {f.name:<{width}}  states {len(f.states_covered):>2}/{len(f.states):<2}  "
                f"transitions {len(f.transitions_covered):>2}/{len(f.transitions):<2}"
            )
            out.extend(f"      uncovered state: {s}" for s in f.uncovered_states)
            out.extend(
                f"      uncovered transition: {src} --{trigger}--> {dest}"
                for _, src, trigger, dest in f.uncovered_transitions
            )
        g_cov, g_all = self.globals_covered, self.globals_all
        out.append(
            f"  {'global':<{width}}  transitions {len(g_cov):>2}/{len(g_all):<2} (any state)"
        )
        out.extend(
            f"      uncovered transition: * --{trigger}--> {dest or '(stays)'}"
            for trigger, dest in g_all
            if (trigger, dest) not in g_cov
        )
        s_cov, s_all = self.states
        t_cov, t_all = self.transitions
        a_cov, a_all = self.all_transitions
        out.append(
            f"  total: states {s_cov}/{s_all} ({_pct(s_cov, s_all)}); transitions {a_cov}/{a_all} "
            f"({_pct(a_cov, a_all)}) = flows {t_cov}/{t_all} + global {len(g_cov)}/{len(g_all)}"
        )
        return out


def _pct(covered: int, total: int) -> str:
    return f"{covered / total:.1%}" if total else "—"


def _global_edges(flows: FlowSet) -> list[GlobalEdge]:
    edges = [(t.trigger, t.dest or "") for t in flows.globals.transitions]
    return list(dict.fromkeys(edges))


def _as_global(flows: FlowSet, edge: Edge, candidates: list[GlobalEdge]) -> GlobalEdge | None:
    """The global transition a fired edge took, by trigger and where it ended."""
    flow, source, trigger, dest = edge
    target = split_target(dest, flow)
    mine = [c for c in candidates if c[0] == trigger]
    # a global with a dest names it; one without stays put. Prefer a named dest that matches, so
    # `start` from menu.main (dest @menu.main) is not taken for the stay-put `start`.
    for candidate in mine:
        if candidate[1] and split_target(candidate[1], "") == target:
            return candidate
    for candidate in mine:
        if not candidate[1] and target == (flow, source):
            return candidate
    return None


def report(coverage: Coverage, flows: FlowSet) -> Report:
    declared = list(dict.fromkeys(flows.all_transitions()))  # two conditions, one edge
    figures = []
    for name in flows.flows:
        states = list(flows.flows[name].decl.states)
        edges = [e for e in declared if e[0] == name]
        figures.append(
            FlowFigures(
                name,
                states,
                [s for s in states if (name, s) in coverage.states],
                edges,
                [e for e in edges if e in coverage.fired],
            )
        )
    known = set(declared)
    candidates = _global_edges(flows)
    used = {
        g
        for e in coverage.fired
        if e not in known and (g := _as_global(flows, e, candidates)) is not None
    }
    return Report(figures, candidates, [g for g in candidates if g in used])

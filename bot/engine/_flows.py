"""Flows as data: load `flows/*.yaml`, validate them, build one transitions Machine per flow.

A flow file declares states (prompt key, view, static buttons, which trigger a text / file /
contact fires) and transitions (trigger, source, dest, conditions, actions). A dest written
`@flow.state` leaves for another flow; `flows/global.yaml` holds the transitions that work in
every state of every flow (cancel, talk to a person, language...).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transitions import Machine

from bot.engine._registry import Registry

FLOWS_DIR = Path(__file__).resolve().parents[2] / "flows"
GLOBAL_FILE = "global.yaml"
ROOT = ("start", "welcome")  # where a new customer begins


class _Decl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ButtonDecl(_Decl):
    label: str  # message key
    trigger: str = ""
    arg: str | None = None
    when: str | None = None  # condition name: show the button only when it holds
    request_contact: bool = False


class StateDecl(_Decl):
    prompt: str | None = None  # message key
    view: str | None = None
    buttons: tuple[ButtonDecl, ...] = ()
    on_text: str | None = None
    on_file: str | None = None
    on_contact: str | None = None
    remind: bool = False  # mid-flow: a customer who leaves here gets one reminder
    quiet: bool = False  # a person has the chat: the bot does not answer
    global_buttons: bool = True  # add the "talk to a person" / "cancel" row


class TransitionDecl(_Decl):
    trigger: str
    source: str | tuple[str, ...]
    dest: str | None = None  # None: stay (internal transition)
    conditions: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else self.source


class FlowDecl(_Decl):
    flow: str
    initial: str
    description: str = ""
    states: dict[str, StateDecl] = Field(min_length=1)
    transitions: tuple[TransitionDecl, ...] = ()


class GlobalDecl(_Decl):
    transitions: tuple[TransitionDecl, ...]
    buttons: tuple[ButtonDecl, ...] = ()  # the row added to every state's buttons


class FlowError(Exception):
    """Flow files that do not load; `problems` name the file and the offending name."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Flow:
    name: str
    decl: FlowDecl
    machine: Machine
    path: Path


@dataclass(frozen=True)
class FlowSet:
    flows: dict[str, Flow]
    globals: GlobalDecl
    message_keys: frozenset[str]

    def state(self, flow: str, state: str) -> StateDecl:
        return self.flows[flow].decl.states[state]

    def has_state(self, flow: str, state: str) -> bool:
        return flow in self.flows and state in self.flows[flow].decl.states

    def transitions_from(self, flow: str, state: str) -> list[TransitionDecl]:
        """The flow's own transitions from `state`, then the global ones."""
        own = [t for t in self.flows[flow].decl.transitions if state in t.sources]
        return own + list(self.globals.transitions)

    def all_states(self) -> list[tuple[str, str]]:
        return [(f, s) for f, flow in self.flows.items() for s in flow.decl.states]

    def all_transitions(self) -> list[tuple[str, str, str, str]]:
        """(flow, source, trigger, dest) of every declared flow transition (globals excluded)."""
        edges = []
        for name, flow in self.flows.items():
            for t in flow.decl.transitions:
                for source in t.sources:
                    edges.append((name, source, t.trigger, t.dest or source))
        return edges


def split_target(dest: str, flow: str) -> tuple[str, str]:
    """'@apply.evidence' -> ('apply', 'evidence'); 'evidence' -> (flow, 'evidence')."""
    if dest.startswith("@"):
        target_flow, _, target_state = dest[1:].partition(".")
        return target_flow, target_state
    return flow, dest


def _read(path: Path, model: type[_Decl], problems: list[str]) -> Any:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return model.model_validate(data)
    except yaml.YAMLError as exc:
        problems.append(f"{path.name}: not valid YAML ({exc})")
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"{path.name}: {where}: {err['msg']}")
    return None


def load_flows(
    registry: Registry, message_keys: Iterable[str], directory: Path = FLOWS_DIR
) -> FlowSet:
    """Load, validate and build every flow; FlowError lists every problem found."""
    problems: list[str] = []
    keys = frozenset(message_keys)
    global_path = directory / GLOBAL_FILE
    globals_decl: GlobalDecl | None = None
    if global_path.exists():
        globals_decl = _read(global_path, GlobalDecl, problems)
    else:
        problems.append(f"{GLOBAL_FILE}: missing")
    decls: dict[str, tuple[FlowDecl, Path]] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path.name == GLOBAL_FILE:
            continue
        decl = _read(path, FlowDecl, problems)
        if decl is None:
            continue
        if decl.flow in decls:
            problems.append(f"{path.name}: flow {decl.flow!r} already declared")
        decls[decl.flow] = (decl, path)
    if problems or globals_decl is None:
        raise FlowError(problems)
    _validate(decls, globals_decl, registry, keys, problems)
    if problems:
        raise FlowError(problems)
    flows = {
        name: Flow(name, decl, _build_machine(decl, globals_decl, registry), path)
        for name, (decl, path) in decls.items()
    }
    return FlowSet(flows, globals_decl, _used_keys(decls, globals_decl))


def _used_keys(decls: dict[str, tuple[FlowDecl, Path]], globals_decl: GlobalDecl) -> frozenset[str]:
    used = {b.label for b in globals_decl.buttons}
    for decl, _ in decls.values():
        for state in decl.states.values():
            if state.prompt:
                used.add(state.prompt)
            used.update(b.label for b in state.buttons)
    return frozenset(used)


def _validate(
    decls: dict[str, tuple[FlowDecl, Path]],
    globals_decl: GlobalDecl,
    registry: Registry,
    keys: frozenset[str],
    problems: list[str],
) -> None:
    def check_target(where: str, flow: str, dest: str | None) -> None:
        if dest is None:
            return
        target_flow, target_state = split_target(dest, flow)
        if target_flow not in decls:
            problems.append(f"{where}: unknown flow {target_flow!r} in dest {dest!r}")
        elif target_state not in decls[target_flow][0].states:
            problems.append(f"{where}: unknown state {target_state!r} in dest {dest!r}")

    def check_callbacks(where: str, t: Any) -> None:
        for name in (*t.conditions, *t.unless):
            if name not in registry.conditions:
                problems.append(f"{where}: unknown condition {name!r}")
        for name in t.actions:
            if name not in registry.actions:
                problems.append(f"{where}: unknown action {name!r}")

    def check_key(where: str, key: str | None) -> None:
        if key is not None and key not in keys:
            problems.append(f"{where}: unknown message key {key!r}")

    global_triggers = {t.trigger for t in globals_decl.transitions}
    for i, t in enumerate(globals_decl.transitions):
        where = f"{GLOBAL_FILE}: transitions[{i}] ({t.trigger})"
        if t.sources != ("*",):
            problems.append(f"{where}: global transitions must have source '*'")
        if t.dest is not None and not t.dest.startswith("@"):
            problems.append(f"{where}: a global dest must name its flow ('@flow.state')")
        check_target(where, "", t.dest)
        check_callbacks(where, t)
    for b in globals_decl.buttons:
        check_key(f"{GLOBAL_FILE}: button", b.label)
        if b.trigger not in global_triggers:
            problems.append(f"{GLOBAL_FILE}: button {b.label!r}: unknown trigger {b.trigger!r}")

    for name, (decl, path) in decls.items():
        file = path.name
        if decl.initial not in decl.states:
            problems.append(f"{file}: initial state {decl.initial!r} is not declared")
        triggers_from: dict[str, set[str]] = {s: set(global_triggers) for s in decl.states}
        for i, t in enumerate(decl.transitions):
            where = f"{file}: transitions[{i}] ({t.trigger})"
            for source in t.sources:
                if source == "*":
                    for s in decl.states:
                        triggers_from[s].add(t.trigger)
                elif source not in decl.states:
                    problems.append(f"{where}: unknown state {source!r} in source")
                else:
                    triggers_from[source].add(t.trigger)
            check_target(where, name, t.dest)
            check_callbacks(where, t)
        for state_name, state in decl.states.items():
            where = f"{file}: state {state_name}"
            check_key(where, state.prompt)
            if state.view is not None and state.view not in registry.views:
                problems.append(f"{where}: unknown view {state.view!r}")
            for b in state.buttons:
                check_key(f"{where}: button", b.label)
                if not b.request_contact and b.trigger not in triggers_from[state_name]:
                    problems.append(
                        f"{where}: button {b.label!r} fires {b.trigger!r}, "
                        "which has no transition from this state"
                    )
                if b.when is not None and b.when not in registry.conditions:
                    problems.append(f"{where}: button {b.label!r}: unknown condition {b.when!r}")
            for field_name in ("on_text", "on_file", "on_contact"):
                trigger = getattr(state, field_name)
                if trigger is not None and trigger not in triggers_from[state_name]:
                    problems.append(
                        f"{where}: {field_name} fires {trigger!r}, "
                        "which has no transition from this state"
                    )
    if not problems:
        for flow_name, state_name in sorted(_unreachable(decls, globals_decl)):
            problems.append(f"{decls[flow_name][1].name}: state {state_name} is unreachable")


def _unreachable(
    decls: dict[str, tuple[FlowDecl, Path]], globals_decl: GlobalDecl
) -> set[tuple[str, str]]:
    roots = [ROOT] + [split_target(t.dest, "") for t in globals_decl.transitions if t.dest]
    seen: set[tuple[str, str]] = set()
    queue = deque(r for r in roots if r[0] in decls)
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen.add(node)
        flow, state = node
        for t in decls[flow][0].transitions:
            if (state in t.sources or "*" in t.sources) and t.dest:
                queue.append(split_target(t.dest, flow))
    every = {(f, s) for f, (d, _) in decls.items() for s in d.states}
    return every - seen


def _adapt(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # transitions passes an EventData (send_event=True); our callbacks take the Turn, its model
    def call(event_data: Any) -> Any:
        return fn(event_data.model)

    call.__name__ = getattr(fn, "__name__", "callback")
    return call


def _transition_dict(t: TransitionDecl, registry: Registry) -> dict[str, Any]:
    return {
        "trigger": t.trigger,
        "source": "*" if t.sources == ("*",) else list(t.sources),
        "dest": t.dest,
        "conditions": [_adapt(registry.conditions[c]) for c in t.conditions],
        "unless": [_adapt(registry.conditions[c]) for c in t.unless],
        "before": [_adapt(registry.actions[a]) for a in t.actions],
    }


def _build_machine(decl: FlowDecl, globals_decl: GlobalDecl, registry: Registry) -> Machine:
    exits = sorted(
        {
            t.dest
            for t in (*decl.transitions, *globals_decl.transitions)
            if t.dest and t.dest.startswith("@")
        }
    )
    return Machine(
        model=None,
        states=[*decl.states, *exits],
        transitions=[
            _transition_dict(t, registry) for t in (*decl.transitions, *globals_decl.transitions)
        ],
        initial=decl.initial,
        auto_transitions=False,
        send_event=True,
    )


def _diagram_id(dest: str | None) -> str | None:
    # Mermaid ids are word characters only: '@apply.evidence' -> 'to_apply__evidence'
    if dest is None or not dest.startswith("@"):
        return dest
    return "to_" + dest[1:].replace(".", "__")


def mermaid(flow: Flow) -> str:
    """A Mermaid state diagram of one flow (global transitions left out to keep it readable)."""
    from transitions.extensions.diagrams import GraphMachine

    class _Model:
        pass

    decl = flow.decl
    exits = sorted({t.dest for t in decl.transitions if t.dest and t.dest.startswith("@")})
    model = _Model()
    GraphMachine(
        model=model,
        states=[*decl.states, *(_diagram_id(e) or e for e in exits)],
        transitions=[
            {
                "trigger": t.trigger,
                "source": list(decl.states) if t.sources == ("*",) else list(t.sources),
                "dest": _diagram_id(t.dest),
                "conditions": list(t.conditions),
                "unless": list(t.unless),
            }
            for t in decl.transitions
        ],
        initial=decl.initial,
        auto_transitions=False,
        graph_engine="mermaid",
        show_conditions=True,
        show_state_attributes=False,
        title=f"flow {decl.flow}",
    )
    source: str = model.get_graph().draw(None)  # type: ignore[attr-defined]
    return source

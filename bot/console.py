"""The terminal console: the same engine a Telegram customer talks to, with the demo orders and a
local SQLite file, no token and no network. Buttons are numbered: type the number or the label."""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import Callable
from pathlib import Path

from bot.app import DEMO_PHONE, App, ensure_demo_orders
from bot.config import Config
from bot.domain import EvidenceKind
from bot.engine import (
    Button,
    ContactInfo,
    FileInfo,
    HandoffEnded,
    HandoffRequested,
    Inbound,
    Kind,
    RelayedToAgent,
    Reply,
    TurnResult,
)
from bot.handoff import COMMAND_ACTIONS, Action, Agent, AgentMessage, Desk, Done, case_ref
from bot.store import ConversationKey

KEY = ConversationKey("console", "demo")
HELP = (
    "Console commands: /contact share the demo customer's phone · /photo PATH · /file PATH · "
    "/agent what an agent sees · /language · /help · /quit"
)
# the agent side in the console (`refund-bot console --agent`): the same desk services
CONSOLE_DESK = 0  # the rehearsal's "agent chat"
CONSOLE_AGENT = Agent(1, "演练客服")
DESK_HELP = (
    "Agent side: /desk queue · /desk open T… · /desk claim · /desk approve [amount] · "
    "/desk reject [reason] · /desk need [request] · /desk note TEXT · /desk say TEXT (to the "
    "customer) · /desk reply [name] · /desk refunded · /desk return · /desk history · "
    "/desk block REASON · /desk unblock · /desk duty on|off"
)


def rehearsal_config(config: Config) -> Config:
    """The config with a desk the console's agent acts at (the customer side then hands off)."""
    desk = config.agent_desk.model_copy(
        update={"chat_id": CONSOLE_DESK, "agent_ids": (CONSOLE_AGENT.user_id,)}
    )
    return config.model_copy(update={"agent_desk": desk})


class Console:
    def __init__(self, app: App, write: Callable[[str], None] = print, agent: bool = False) -> None:
        self.app = app
        self.write = write
        self.buttons: tuple[Button, ...] = ()
        self.agent = agent  # the agent side is on: /desk commands act at the desk
        self.desk = Desk(app, KEY.channel)
        self.ref: str | None = None  # the case the agent opened (default: the customer's)

    def start(self) -> None:
        """Greet: a new customer sees the welcome, a returning one is back where they were."""
        summary = ensure_demo_orders(self.app)
        if summary is not None:
            self.write(f"(demo: {summary})")
        self.write(HELP)
        if self.agent:
            self.write(DESK_HELP)
        self.send(Inbound(KEY, Kind.COMMAND, self._id(), command="start"))

    def handle_line(self, line: str) -> bool:
        """One line typed by the person at the terminal; False to stop."""
        line = line.strip()
        for result in self.app.engine.fire_reminders():
            self.show(result)
        if not line:
            return True
        if line in ("/quit", "/exit"):
            return False
        command, _, rest = line.partition(" ")
        if command == "/contact":
            self.send(Inbound(KEY, Kind.CONTACT, self._id(), contact=ContactInfo(DEMO_PHONE, None)))
        elif command in ("/photo", "/file"):
            info = self._file(rest.strip(), photo=command == "/photo")
            if info is not None:
                self.send(Inbound(KEY, Kind.FILE, self._id(), files=(info,)))
        elif command == "/agent" and not self.agent:
            self.agent_view()
        elif command == "/desk" and self.agent:
            self.desk_command(rest)
        elif line.startswith("/"):
            self.send(Inbound(KEY, Kind.COMMAND, self._id(), command=command[1:]))
        elif line.isdigit() and 1 <= int(line) <= len(self.buttons):
            button = self.buttons[int(line) - 1]
            if button.request_contact:
                self.send(
                    Inbound(KEY, Kind.CONTACT, self._id(), contact=ContactInfo(DEMO_PHONE, None))
                )
            else:
                self.send(Inbound(KEY, Kind.BUTTON, self._id(), token=button.token))
        else:
            self.send(Inbound(KEY, Kind.TEXT, self._id(), text=line))
        return True

    def send(self, event: Inbound) -> TurnResult:
        result = self.app.engine.handle(event)
        self.show(result)
        if self.agent:
            self.deliver(show=False)  # the turn's replies are shown above: delivered
            self.to_desk(result, event.text or "")
        return result

    def to_desk(self, result: TurnResult, said: str) -> None:
        """What the customer's turn means for the desk, as the Telegram desk does it."""
        for effect in result.effects:
            match effect:
                case HandoffRequested():
                    case = self.desk.handoff(effect, KEY)
                    self.ref = None
                    card = self.desk.card(case)
                    if card is not None:
                        self.desk.card_posted(case, CONSOLE_DESK, None, [])
                        self._agent_done(Done(True, card.text))
                case RelayedToAgent():
                    self.desk.relay_case(KEY, said or "[file]")
                case HandoffEnded():
                    self.desk.handoff_ended(KEY)

    def show(self, result: TurnResult) -> None:
        if result.button_answer:
            self.write(f"  ({result.button_answer})")
        for reply in result.replies:
            self._print_reply(reply)

    def _print_reply(self, reply: Reply) -> None:
        self.write("")
        for line in reply.text.splitlines():
            self.write(f"🤖 {line}")
        if reply.buttons:
            self.buttons = reply.buttons
            for i, b in enumerate(reply.buttons, 1):
                self.write(f"   [{i}] {b.label}")

    def agent_view(self) -> None:
        """What an agent would see: the agent desk's own queue of open tickets."""
        text, _ = Desk(self.app, KEY.channel).queue()
        self.write("— agent desk —")
        for line in text.splitlines():
            self.write(f"  {line}")

    def desk_command(self, rest: str) -> None:
        """`/desk NAME ARGS`: the agent acts on the console customer's case, as in a topic."""
        name, _, arg = rest.strip().partition(" ")
        desk = self.desk
        if name == "queue":
            self.agent_view()
            return
        if name == "duty":
            self._agent_done(desk.duty(CONSOLE_AGENT, CONSOLE_DESK, arg))
            return
        if name == "open":
            self.ref = arg.strip() or None
            if self.ref:
                self._agent_done(self._act("open", ""))
            return
        if name not in (*COMMAND_ACTIONS, "say"):
            self.write(f"  ({DESK_HELP})")
            return
        self._agent_done(self._act(name, arg))

    def _act(self, name: str, arg: str) -> Done:
        ref = self.ref or self._customer_case()
        if ref is None:
            return Done(False, self.desk.texts.t("desk.error.no_case"))
        if name == "say":
            with self.app.store.unit_of_work() as uow:
                case = (
                    uow.case_of_ticket(ref) if not ref.startswith("c") else uow.case(int(ref[1:]))
                )
            if case is None:
                return Done(False, self.desk.texts.t("desk.error.unknown", ref=ref))
            message = AgentMessage(CONSOLE_DESK, 0, text=f"> {arg}")
            return self.desk.relay_to_customer(
                CONSOLE_AGENT, CONSOLE_DESK, case, message, self._id()
            )
        action = Action.OPEN if name == "open" else COMMAND_ACTIONS[name]
        return self.desk.act(CONSOLE_AGENT, CONSOLE_DESK, action, ref, arg, self._id())

    def _customer_case(self) -> str | None:
        with self.app.store.unit_of_work() as uow:
            case = uow.latest_case_of_conversation(KEY)
        return case_ref(case) if case is not None else None

    def _agent_done(self, done: Done) -> None:
        """What the agent is told, the standard texts to pick (by name), and what the customer
        got from the desk (the outbox the desk wrote)."""
        self.write("— agent desk —")
        for line in (done.text or "").splitlines():
            self.write(f"  {line}")
        for button in done.choices:
            choice = button.token.rsplit(":", 1)[-1]
            self.write(f"   [{choice}] {button.label}")
        self.deliver()

    def deliver(self, show: bool = True) -> None:
        """Show the customer what the desk wrote to them, and mark it delivered."""
        with self.app.store.unit_of_work() as uow:
            pending = uow.pending_outbox(100, KEY.channel, KEY.user_id)
            for message in pending:
                assert message.outbox_id is not None
                uow.mark_sent(message.outbox_id, self.app.clock.now())
        for message in pending if show else ():
            self._print_reply(Reply.from_payload(message.payload))

    def _file(self, path_text: str, photo: bool) -> FileInfo | None:
        path = Path(path_text).expanduser()
        if not path_text or not path.is_file():
            self.write(f"  (no such file: {path_text or '—'}; usage: /photo PATH or /file PATH)")
            return None
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        mime = mimetypes.guess_type(path.name)[0]
        if photo:
            kind = EvidenceKind.PHOTO
        elif mime == "application/pdf":
            kind = EvidenceKind.PDF
        elif mime and mime.startswith("video/"):
            kind = EvidenceKind.VIDEO
        else:
            kind = EvidenceKind.DOCUMENT
        return FileInfo(
            kind=kind,
            file_id=f"console:{path.resolve()}",
            file_unique_id=digest[:16],
            size_bytes=len(data),
            mime_type=mime,
            file_name=path.name,
            sha256=digest,
        )

    @staticmethod
    def _id() -> str:
        return f"console:{uuid.uuid4().hex}"


def line_reader() -> Callable[[str], str]:
    """`input`, with line editing where Python has the readline module: arrows move the cursor
    (instead of typing `^[[D`), Up and Down recall the lines of this session, kept in memory.
    Without readline (Windows, some minimal builds) it is plain `input`; everything else works."""
    try:
        import readline
    except ImportError:
        return input
    readline.set_auto_history(True)  # every line read joins this process's history (no file)
    return input


def run_console(
    app: App,
    read: Callable[[str], str] | None = None,
    write: Callable[[str], None] = print,
    agent: bool = False,
) -> int:
    """The interactive loop; Ctrl-D or /quit ends it. Reads with `line_reader()` unless told.
    `agent`: the agent side too (/desk commands; the app's config from rehearsal_config)."""
    read = read or line_reader()
    console = Console(app, write, agent)
    console.start()
    while True:
        try:
            line = read("> ")
        except (EOFError, KeyboardInterrupt):
            write("")
            return 0
        if not console.handle_line(line):
            return 0

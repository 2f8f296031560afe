"""The terminal console: the same engine a Telegram customer talks to, with the demo orders and a
local SQLite file, no token and no network. Buttons are numbered: type the number or the label."""

from __future__ import annotations

import hashlib
import mimetypes
import uuid
from collections.abc import Callable
from pathlib import Path

from bot.app import DEMO_PHONE, App, ensure_demo_orders
from bot.domain import EvidenceKind
from bot.engine import Button, ContactInfo, FileInfo, Inbound, Kind, Reply, TurnResult
from bot.handoff import Desk
from bot.store import ConversationKey

KEY = ConversationKey("console", "demo")
HELP = (
    "Console commands: /contact share the demo customer's phone · /photo PATH · /file PATH · "
    "/agent what an agent sees · /language · /help · /quit"
)


class Console:
    def __init__(self, app: App, write: Callable[[str], None] = print) -> None:
        self.app = app
        self.write = write
        self.buttons: tuple[Button, ...] = ()

    def start(self) -> None:
        """Greet: a new customer sees the welcome, a returning one is back where they were."""
        summary = ensure_demo_orders(self.app)
        if summary is not None:
            self.write(f"(demo: {summary})")
        self.write(HELP)
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
        elif command == "/agent":
            self.agent_view()
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
        return result

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
    app: App, read: Callable[[str], str] | None = None, write: Callable[[str], None] = print
) -> int:
    """The interactive loop; Ctrl-D or /quit ends it. Reads with `line_reader()` unless told."""
    read = read or line_reader()
    console = Console(app, write)
    console.start()
    while True:
        try:
            line = read("> ")
        except (EOFError, KeyboardInterrupt):
            write("")
            return 0
        if not console.handle_line(line):
            return 0

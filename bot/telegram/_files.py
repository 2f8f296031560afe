"""Evidence files checked by their content: downloaded (within Telegram's 20 MB), bytes checked
against the declared type, hashed for duplicates, and kept by hash when a folder is configured."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from pathlib import Path

from telegram import Bot
from telegram.constants import FileSizeLimit
from telegram.error import TelegramError

from bot.domain import EvidenceKind
from bot.engine import FileInfo

log = logging.getLogger(__name__)

# what the Bot API lets a bot download from Telegram's cloud server (a local server has no limit,
# but the evidence limits of config.yaml stay under it anyway)
DOWNLOAD_LIMIT = int(FileSizeLimit.FILESIZE_DOWNLOAD)
JPEG = b"\xff\xd8\xff"
PNG = b"\x89PNG\r\n\x1a\n"
PDF = b"%PDF"
PDF_HEADER_WINDOW = 1024  # readers accept the header anywhere in the first KiB


def bytes_match(kind: EvidenceKind, data: bytes) -> bool:
    """Whether the bytes really are the declared kind (PDF, or a JPEG/PNG photo)."""
    if kind is EvidenceKind.PDF:
        return PDF in data[:PDF_HEADER_WINDOW]
    if kind is EvidenceKind.PHOTO:
        return data.startswith((JPEG, PNG))
    return True  # documents and videos come in too many formats to tell apart by magic


def suffix_of(info: FileInfo, data: bytes) -> str:
    if info.kind is EvidenceKind.PDF:
        return ".pdf"
    if data.startswith(JPEG):
        return ".jpg"
    if data.startswith(PNG):
        return ".png"
    name_suffix = Path(info.file_name or "").suffix.lower()
    return name_suffix if name_suffix.isascii() and 1 < len(name_suffix) <= 8 else ".bin"


class EvidenceDownloads:
    """Downloads each file to check it; keeps it in `folder` as `<sha256><suffix>` if given."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    async def fetch(self, bot: Bot, info: FileInfo) -> FileInfo:
        """The file with its sha256, true size and whether its bytes are its type (the dialogue
        refuses it if not)."""
        if info.size_bytes > DOWNLOAD_LIMIT:
            return info  # too big to download: the engine refuses it by size with the limit
        try:
            file = await bot.get_file(info.file_id)
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:  # Telegram could not give it now: taken as it is declared
            log.warning("file %s not downloaded, not checked: %s", info.file_unique_id, exc)
            return info
        if not bytes_match(info.kind, data):
            log.info("file %s declared %s does not match its bytes", info.file_unique_id, info.kind)
            return dataclasses.replace(info, content_ok=False)
        digest = hashlib.sha256(data).hexdigest()
        if self.folder is not None:
            path = self.folder / f"{digest}{suffix_of(info, data)}"
            await asyncio.to_thread(_write_once, path, data)
        return dataclasses.replace(info, sha256=digest, size_bytes=len(data), content_ok=True)


def _write_once(path: Path, data: bytes) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)  # a crash mid-write never leaves a truncated file under the real name

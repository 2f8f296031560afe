"""Sharing the phone (own contacts only) and evidence files (limits, types, optional download)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot.clock import FixedClock
from bot.domain import EvidenceKind
from bot.testing import FakeTelegram
from tests.telegram.support import ALICE, BOB, NOW, ShopHarness, telegram_config

NOT_OWN = "You can only verify with your own phone number."


def linked_customers(harness: ShopHarness) -> int:
    return harness.count("SELECT count(*) FROM customer_identities")


async def test_someone_elses_contact_is_refused(harness: ShopHarness) -> None:
    await harness.process(harness.updates.command(ALICE, "start"))
    await harness.process(harness.updates.contact(ALICE, owner=BOB.id))
    refusal, again = harness.tg.sent(ALICE.id)[-2:]
    assert refusal["text"].startswith(NOT_OWN)
    assert "remove_keyboard" not in str(refusal)  # the contact keyboard is asked for again...
    assert again["reply_markup"]["keyboard"][0][0]["request_contact"] is True  # ...right here
    assert harness.state(ALICE) == "start.welcome"
    assert linked_customers(harness) == 0


async def test_a_contact_without_a_telegram_user_is_refused(harness: ShopHarness) -> None:
    await harness.process(harness.updates.command(ALICE, "start"))
    await harness.process(harness.updates.contact(ALICE, owner=None))
    assert harness.tg.texts(ALICE.id)[-2].startswith(NOT_OWN)
    assert linked_customers(harness) == 0


async def test_a_forwarded_own_contact_is_refused(harness: ShopHarness) -> None:
    await harness.process(harness.updates.command(ALICE, "start"))
    origin = {"type": "user", "date": int(NOW.timestamp()), "sender_user": ALICE.as_dict()}
    await harness.process(harness.updates.contact(ALICE, forward_origin=origin))
    assert harness.tg.texts(ALICE.id)[-2].startswith(NOT_OWN)
    assert harness.state(ALICE) == "start.welcome"
    assert linked_customers(harness) == 0


async def test_an_oversized_and_a_wrong_type_file_are_refused_with_the_reason(
    harness: ShopHarness,
) -> None:
    await harness.to_evidence(ALICE)
    up = harness.updates
    await harness.process(
        up.document(ALICE, "big", "bank-statement.pdf", "application/pdf", size=25 * 1024 * 1024)
    )
    assert (
        harness.tg.texts(ALICE.id)[-2]
        == "“bank-statement.pdf” is larger than 20MB. Please compress it and try again."
    )
    await harness.process(
        up.document(
            ALICE,
            "doc",
            "letter.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        )
    )
    assert harness.tg.texts(ALICE.id)[-2].startswith(
        "“letter.docx” isn't a supported file type. Please upload photos"
    )
    assert "Uploaded: 0" in harness.tg.texts(ALICE.id)[-1]  # the checklist: still nothing


async def test_documents_by_mime_type(harness: ShopHarness) -> None:
    await harness.to_evidence(ALICE)
    up = harness.updates
    await harness.process(up.document(ALICE, "pdf", "invoice.pdf", "application/pdf"))
    await harness.process(up.document(ALICE, "png", "screenshot.png", "image/png"))
    await harness.process(harness.updates.photo(ALICE, "snap"))
    evidence = harness.evidence(ALICE)
    assert [(e["kind"], e["file_id"]) for e in evidence] == [
        (EvidenceKind.PDF, "pdf"),
        (EvidenceKind.PHOTO, "png"),  # a screenshot sent as a file is still a photo
        (EvidenceKind.PHOTO, "snap"),
    ]
    assert [e["mime_type"] for e in evidence] == ["application/pdf", "image/png", "image/jpeg"]


async def test_downloaded_evidence_is_hashed_and_checked_against_its_type(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    folder = tmp_path / "evidence"
    config = telegram_config(
        tmp_path,
        telegram={
            "evidence_download_dir": str(folder),
            # a self-hosted Bot API server: every call and download goes there
            "base_url": "http://127.0.0.1:8081/bot",
            "base_file_url": "http://127.0.0.1:8081/file/bot",
        },
    )
    harness = ShopHarness(config, clock, tg)
    await harness.start()
    try:
        await harness.to_evidence(ALICE)
        real = b"%PDF-1.7\n" + b"0" * 500
        tg.add_file("real", real)
        tg.add_file("fake", b"MZ\x90\x00 this is an executable, not a PDF")
        tg.add_file("jpeg", b"\xff\xd8\xff\xe0" + b"1" * 300, kind="photo")
        up = harness.updates
        await harness.process(up.document(ALICE, "real", "invoice.pdf", "application/pdf", size=1))
        await harness.process(up.document(ALICE, "fake", "contract.pdf", "application/pdf"))
        refusal = [t for t in tg.texts(ALICE.id) if "contract.pdf" in t]
        # refused inside the turn, like any other file the step cannot take
        assert len(refusal) == 1 and refusal[0].startswith(
            "“contract.pdf” does not contain what its file type says, so it wasn't saved."
        )
        await harness.process(up.photo(ALICE, "jpeg"))
        evidence = harness.evidence(ALICE)
        assert [e["file_id"] for e in evidence] == ["real", "jpeg"]
        digest = hashlib.sha256(real).hexdigest()
        assert evidence[0]["sha256"] == digest
        assert evidence[0]["size_bytes"] == len(real)  # the true size, not the declared one
        assert (folder / f"{digest}.pdf").read_bytes() == real
        assert sorted(p.suffix for p in folder.iterdir()) == [".jpg", ".pdf"]
        token = "123456:TEST-token"
        assert all(c.url.startswith("http://127.0.0.1:8081/") for c in tg.calls)
        assert tg.calls[0].url == f"http://127.0.0.1:8081/bot{token}/getMe"
        downloads = [c.url for c in tg.calls if c.method == "GET"]
        assert downloads[0] == "http://127.0.0.1:8081/file/bot123456%3ATEST-token/documents/real"
    finally:
        await harness.stop()


async def test_the_other_buttons_of_the_contact_keyboard_send_their_label(
    harness: ShopHarness,
) -> None:
    """Beside the contact button, reply-keyboard buttons send their label as text."""
    await harness.process(harness.updates.command(ALICE, "start"))
    keyboard = harness.tg.sent(ALICE.id)[-1]["reply_markup"]["keyboard"]
    label = keyboard[1][0]["text"]
    assert label == "Verify with order number"
    await harness.process(harness.updates.text(ALICE, label))
    assert harness.state(ALICE) == "start.ask_order_no"


async def test_by_default_a_file_is_checked_by_its_bytes_not_its_name_or_type(
    harness: ShopHarness,
) -> None:
    tg, up = harness.tg, harness.updates
    await harness.to_evidence(ALICE)
    tg.add_file("exe", b"MZ\x90\x00 an executable dressed as a screenshot")
    png = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
    tg.add_file("png", png)
    tg.add_file("png-again", png)  # the same bytes under another file id
    await harness.process(up.document(ALICE, "exe", "invoice.exe", "image/png"))
    await harness.process(up.document(ALICE, "png", "截图.png", "image/png"))
    await harness.process(up.document(ALICE, "png-again", "截图2.png", "image/png"))
    texts = tg.texts(ALICE.id)
    assert any(
        t.startswith("“invoice.exe” does not contain what its file type says") for t in texts
    )
    assert "“截图2.png” has already been uploaded." in texts
    evidence = harness.evidence(ALICE)
    assert [e["file_id"] for e in evidence] == ["png"]
    assert evidence[0]["sha256"] == hashlib.sha256(png).hexdigest()


async def test_with_content_checks_off_the_declared_type_is_trusted(
    tmp_path: Path, clock: FixedClock, tg: FakeTelegram
) -> None:
    config = telegram_config(tmp_path, telegram={"check_file_content": False})
    harness = ShopHarness(config, clock, tg)
    await harness.start()
    try:
        await harness.to_evidence(ALICE)
        tg.add_file("exe", b"MZ\x90\x00 an executable dressed as a screenshot")
        await harness.process(harness.updates.document(ALICE, "exe", "invoice.exe", "image/png"))
        assert [e["file_id"] for e in harness.evidence(ALICE)] == ["exe"]
        assert not [c for c in tg.calls if c.method in ("getFile", "GET")]  # nothing downloaded
    finally:
        await harness.stop()

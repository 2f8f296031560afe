"""bot.testing's fake served over loopback HTTP (`FakeBotApiServer`): python-telegram-bot's own
`Bot` with its real HTTP transport, pointed at `base_url`, gets what the fake answers in-process;
the fake's switches work across the thread; a token Telegram does not know is refused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, InvalidToken, RetryAfter

from bot.testing import TOKEN, WAIT, Call, Failure, FakeBotApiServer, FakeTelegram, Updates, User

ALICE = User(1001, language_code="en")


@pytest.fixture
def server() -> Iterator[FakeBotApiServer]:
    with FakeBotApiServer(FakeTelegram(), long_poll=WAIT) as running:
        yield running


def real_bot(server: FakeBotApiServer, token: str = TOKEN) -> Bot:
    return Bot(token, base_url=server.url, base_file_url=server.file_url)


async def test_form_encoded_methods_reach_the_fake_as_ptb_passed_them(
    server: FakeBotApiServer,
) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes")]])
    async with real_bot(server) as bot:
        assert bot.username == "xiaonian_refund_bot"  # getMe, answered by the fake
        first = await bot.send_message(ALICE.id, "123", reply_markup=markup)
        second = await bot.send_message(ALICE.id, "true")
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(ALICE.id, "  ")
    sent = server.call(lambda: server.tg.sent(ALICE.id))
    # a text that looks like JSON stays a string; the keyboard and the chat id are decoded
    assert [p["text"] for p in sent] == ["123", "true", "  "]
    assert sent[0]["chat_id"] == ALICE.id
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]
    }
    assert (first.message_id, second.message_id) == (1, 2)
    assert server.call(lambda: [c.error for c in server.tg.refused]) == [
        "Bad Request: message text is empty"
    ]


async def test_getfile_and_the_download_come_from_the_fake(server: FakeBotApiServer) -> None:
    server.call(lambda: server.tg.add_file("ph-1", b"\xff\xd8\xff\xe0 a photo", kind="photo"))
    async with real_bot(server) as bot:
        file = await bot.get_file("ph-1")
        assert file.file_path is not None and file.file_path.endswith("photos/ph-1")
        assert bytes(await file.download_as_bytearray()) == b"\xff\xd8\xff\xe0 a photo"
        with pytest.raises(BadRequest, match="Invalid file_id"):
            await bot.get_file("unknown")


async def test_failures_and_held_calls_work_across_the_thread(
    server: FakeBotApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # RetryAfter's seconds as a timedelta, no warning
    tg = server.tg
    server.call(lambda: tg.fail("sendMessage", Failure.flood(3)))
    gate = server.call(lambda: tg.hold("sendMessage"))
    async with real_bot(server) as bot:
        with pytest.raises(RetryAfter):
            await bot.send_message(ALICE.id, "too fast")
        sending = asyncio.create_task(bot.send_message(ALICE.id, "held"))
        await asyncio.to_thread(server.until, lambda: len(tg.sent(ALICE.id)) == 2)
        assert not sending.done()  # recorded, not answered
        server.call(gate.release)
        assert (await sending).text == "held"


async def test_get_updates_waits_for_an_update_and_answers_it(server: FakeBotApiServer) -> None:
    async with real_bot(server) as bot:
        waiting = asyncio.create_task(bot.get_updates(timeout=3))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # long polling: no empty answer at once
        await asyncio.to_thread(server.push, Updates().command(ALICE, "start"))
        (update,) = await asyncio.wait_for(waiting, WAIT)
        assert update.message is not None and update.message.text == "/start"
        assert await bot.get_updates(timeout=0) == ()


async def test_json_bodies_are_taken_and_unknown_tokens_refused(server: FakeBotApiServer) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(
            f"{server.url}{TOKEN}/sendMessage", json={"chat_id": ALICE.id, "text": "hi"}
        )
        assert answer.status_code == 200
        assert json.loads(answer.content)["result"]["text"] == "hi"
        refused = await client.post(f"{server.url}999:wrong/getMe")
        assert refused.status_code == 401
    with pytest.raises(InvalidToken):
        async with real_bot(server, "999:wrong"):
            pass
    assert server.call(lambda: server.tg.texts(ALICE.id)) == ["hi"]


async def test_an_exception_in_the_fake_is_a_json_500_as_telegram_answers(
    server: FakeBotApiServer,
) -> None:
    def broken(call: Call) -> None:
        raise RuntimeError("the test's watcher broke")

    server.call(lambda: server.tg.watch(broken))
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(f"{server.url}{TOKEN}/getMe")
    assert answer.status_code == 500
    assert answer.json()["ok"] is False and "watcher broke" in answer.json()["description"]

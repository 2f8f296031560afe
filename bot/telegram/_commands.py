"""The command menu registered with Telegram, in each language the bot speaks."""

from __future__ import annotations

from telegram import Bot, BotCommand

# The command list is Telegram client chrome, registered once at start-up, not dialogue text;
# the engine maps the same names to its global triggers (bot.engine.COMMANDS).
COMMAND_MENU: dict[str, dict[str, str]] = {
    "start": {"zh-CN": "开始 / 验证身份", "en": "Start / verify your account"},
    "refund": {"zh-CN": "申请退款", "en": "Request a refund"},
    "status": {"zh-CN": "我的售后", "en": "My requests"},
    "agent": {"zh-CN": "转人工客服", "en": "Talk to an agent"},
    "cancel": {"zh-CN": "取消当前操作", "en": "Cancel what you are doing"},
    "language": {"zh-CN": "切换语言 中文/English", "en": "Switch language 中文/English"},
    "help": {"zh-CN": "帮助", "en": "Help"},
}
# Telegram picks the list by the client's two-letter language; the default covers the rest
LANGUAGES: dict[str, str] = {"zh": "zh-CN", "en": "en"}


def commands_for(locale: str) -> list[BotCommand]:
    return [BotCommand(name, texts[locale]) for name, texts in COMMAND_MENU.items()]


async def register_commands(bot: Bot, default_locale: str) -> None:
    """setMyCommands for the default language and for each one the bot speaks."""
    await bot.set_my_commands(commands_for(default_locale))
    for language_code, locale in LANGUAGES.items():
        await bot.set_my_commands(commands_for(locale), language_code=language_code)

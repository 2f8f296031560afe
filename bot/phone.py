"""Phone numbers in one spelling (E.164), so an imported order and a Telegram contact meet."""

from __future__ import annotations

import re
import unicodedata

# Separators people and shop exports put in numbers; anything else is a typo we should not guess at.
_SEPARATORS = re.compile(r"[\s\-()]")
_DIGITS = re.compile(r"[0-9]+")
# Chinese mobile numbers: 11 digits, 13x–19x. The second digit matters: it keeps a bare
# North American number such as 12025550123 (also 11 digits starting with 1) from being
# mistaken for a Chinese one.
_CN_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_E164_MIN, _E164_MAX = 8, 15


def normalise_phone(raw: str) -> str:
    """E.164 form of a phone number: "+86 138-0013-8000" -> "+8613800138000"; ValueError if none."""
    # NFKC turns full-width digits, plus signs, dashes and brackets (Chinese input) into ASCII.
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not text:
        raise ValueError("phone number is empty")
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not _DIGITS.fullmatch(digits):
        raise ValueError(
            f"phone number {raw.strip()!r} may contain only digits, a leading +, spaces, "
            "dashes and parentheses"
        )
    if not plus and digits.startswith("00"):
        # 00 is the international call prefix dialled from China: 0086… means +86…
        digits, plus = digits[2:], True
    if plus or (digits.startswith("86") and len(digits) == 13):
        return _international(raw, digits)
    if _CN_MOBILE.fullmatch(digits):
        return "+86" + digits
    if len(digits) == 11 and digits.startswith("1"):
        raise ValueError(
            f"phone number {raw.strip()!r} is not a Chinese mobile number (those start with "
            "13–19); write numbers from other countries with + and the country code"
        )
    raise ValueError(
        f"phone number {raw.strip()!r} is neither a Chinese mobile number (11 digits starting "
        f"with 1, got {len(digits)} digits) nor an international number with + and the country "
        "code"
    )


def _international(raw: str, digits: str) -> str:
    if digits.startswith("86"):
        national = digits[2:]
        if not _CN_MOBILE.fullmatch(national):
            raise ValueError(
                f"phone number {raw.strip()!r}: after +86 a Chinese mobile number needs 11 digits "
                f"starting with 13–19 (got {national or 'nothing'})"
            )
        return "+86" + national
    if digits.startswith("0"):
        raise ValueError(f"phone number {raw.strip()!r}: a country code never starts with 0")
    if not _E164_MIN <= len(digits) <= _E164_MAX:
        raise ValueError(
            f"phone number {raw.strip()!r}: an international number has {_E164_MIN}–{_E164_MAX} "
            f"digits after the + (got {len(digits)})"
        )
    return "+" + digits

"""config.yaml as pydantic models, validated at start; secrets come from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.domain import (
    SUB_REASONS,
    Category,
    EvidenceKind,
    EvidenceRequirement,
    PaymentChannel,
    Reason,
    SubReason,
)
from bot.money import parse_yuan
from bot.store_url import BadStoreUrl, StoreUrl, parse_store_url, sqlite_url

LOCALES: tuple[str, ...] = ("zh-CN", "en")
MAX_EVIDENCE_MB = 20


def _yuan_to_fen(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be an amount in yuan, e.g. 200 or 200.00")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, str):
        return parse_yuan(value)
    if isinstance(value, float):
        return parse_yuan(f"{value}")
    raise ValueError("must be an amount in yuan, e.g. 200 or 200.00")


# An amount written in yuan in config.yaml ("200.00"), held as integer fen.
YuanAsFen = Annotated[
    int,
    BeforeValidator(_yuan_to_fen),
    Field(ge=0),
    # dumped as yuan text, so a config written back out reads in as the same amount
    PlainSerializer(lambda fen: f"{fen // 100}.{fen % 100:02d}", return_type=str, when_used="json"),
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Why a category is excluded from the seven-day return: "statutory" = on CPL Art. 25(1)'s list
# (refused outright); "by_nature" = excluded by its nature only where the customer confirmed it at
# purchase (CPL Art. 25(2), 2017 Measures Art. 7–8, Implementing Regulations 2024 Art. 19).
ExclusionBasis = Literal["statutory", "by_nature"]


def _exclusions(value: object) -> object:
    # the list form of earlier configs stays valid and means statutory
    if isinstance(value, list | tuple):
        return {category: "statutory" for category in value}
    return value


def _default_exclusions() -> dict[Category, ExclusionBasis]:
    return {Category.GAME_POINTS: "by_nature", Category.PHONE_TOPUP: "by_nature"}


class SevenDay(Section):
    window_days: int = Field(default=7, ge=1)
    excluded_categories: Annotated[dict[Category, ExclusionBasis], BeforeValidator(_exclusions)] = (
        Field(default_factory=_default_exclusions)
    )
    # Civil Code Art. 203: a window whose last day is a rest day ends on the next working day
    extend_to_working_day: bool = True


class EvidenceRule(Section):
    """Evidence limits for one reason or sub-reason; unset fields come from `evidence.default`."""

    min_count: int | None = Field(default=None, ge=0)
    max_files: int | None = Field(default=None, ge=1, le=50)
    max_size_mb: float | None = Field(default=None, gt=0, le=MAX_EVIDENCE_MB)
    allowed_types: tuple[EvidenceKind, ...] | None = Field(default=None, min_length=1)


class EvidencePolicy(Section):
    default: EvidenceRule = EvidenceRule(
        min_count=0,
        max_files=9,
        max_size_mb=20,
        allowed_types=(EvidenceKind.PHOTO, EvidenceKind.PDF),
    )
    # keys: a reason ("service_issue") or a reason and sub-reason ("service_issue.benefits_missing")
    rules: dict[str, EvidenceRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> EvidencePolicy:
        d = self.default
        if None in (d.min_count, d.max_files, d.max_size_mb, d.allowed_types):
            raise ValueError(
                "default: min_count, max_files, max_size_mb and allowed_types are all required"
            )
        for key in self.rules:
            reason_name, _, sub_name = key.partition(".")
            if reason_name not in Reason.__members__.values():
                raise ValueError(f"rules.{key}: unknown reason {reason_name!r}")
            if sub_name and sub_name not in _subs(Reason(reason_name)):
                raise ValueError(f"rules.{key}: {sub_name!r} is not a sub-reason of {reason_name}")
        for reason in Reason:
            for sub in (None, *_subs(reason)):
                req = self.requirement(reason, sub)
                if req.min_count > req.max_files:
                    where = reason.value + (f".{sub.value}" if sub else "")
                    raise ValueError(f"rules.{where}: min_count must not exceed max_files")
        return self

    def requirement(self, reason: Reason, sub_reason: SubReason | None) -> EvidenceRequirement:
        """The evidence rule for a reason and sub-reason: default, then reason, then sub-reason."""
        merged: dict[str, Any] = self.default.model_dump()
        layers = [self.rules.get(reason.value)]
        if sub_reason is not None:
            layers.append(self.rules.get(f"{reason.value}.{sub_reason.value}"))
        for layer in layers:
            if layer is not None:
                merged.update(layer.model_dump(exclude_none=True))
        hint = reason.value + (f"_{sub_reason.value}" if sub_reason else "")
        return EvidenceRequirement(
            min_count=merged["min_count"],
            max_files=merged["max_files"],
            max_size_bytes=int(merged["max_size_mb"] * 1024 * 1024),
            allowed_kinds=tuple(merged["allowed_types"]),
            hint_key=f"evidence.hint.{hint}",
        )


def _subs(reason: Reason) -> tuple[SubReason, ...]:
    return SUB_REASONS[reason]


class FastRefund(Section):
    """极速退款: approved at submission, no agent, when every condition holds."""

    enabled: bool = True
    reasons: tuple[Reason, ...] = (Reason.SEVEN_DAY,)
    max_amount: YuanAsFen = 20000
    no_rejection_within_days: int = Field(default=90, ge=0)


class Compensation(Section):
    """CPL Art. 53: interest on the prepayment and reasonable costs, added by an agent to a
    ticket apart from the price refund; each kind capped per ticket."""

    reasons: tuple[Reason, ...] = (Reason.SERVICE_ISSUE,)
    max_interest: YuanAsFen = 10000
    max_costs: YuanAsFen = 30000


class DuplicatePurchase(Section):
    window_hours: int = Field(default=24, ge=1, le=24 * 30)


class ReviewDeadlines(Section):
    normal_working_days: int = Field(default=3, ge=1, le=30)
    priority_working_days: int = Field(default=1, ge=1, le=30)

    @model_validator(mode="after")
    def _order(self) -> ReviewDeadlines:
        if self.priority_working_days > self.normal_working_days:
            raise ValueError("priority_working_days must not exceed normal_working_days")
        return self


class PayoutWindow(Section):
    min_working_days: int = Field(ge=0, le=30)
    max_working_days: int = Field(ge=1, le=30)

    @model_validator(mode="after")
    def _order(self) -> PayoutWindow:
        if self.min_working_days > self.max_working_days:
            raise ValueError("min_working_days must not exceed max_working_days")
        return self


def _default_payout() -> dict[PaymentChannel, PayoutWindow]:
    return {
        PaymentChannel.WECHAT: PayoutWindow(min_working_days=1, max_working_days=3),
        PaymentChannel.ALIPAY: PayoutWindow(min_working_days=1, max_working_days=3),
        PaymentChannel.BANK_CARD: PayoutWindow(min_working_days=3, max_working_days=5),
    }


class Policy(Section):
    seven_day: SevenDay = SevenDay()
    evidence: EvidencePolicy = EvidencePolicy()
    pro_rata_unit: Literal["day", "month"] = "day"
    fast_refund: FastRefund = FastRefund()
    duplicate_purchase: DuplicatePurchase = DuplicatePurchase()
    compensation: Compensation = Compensation()
    review: ReviewDeadlines = ReviewDeadlines()
    payout_windows: dict[PaymentChannel, PayoutWindow] = Field(default_factory=_default_payout)
    max_appeals: int = Field(default=1, ge=0, le=3)

    @model_validator(mode="after")
    def _all_channels(self) -> Policy:
        missing = [c.value for c in PaymentChannel if c not in self.payout_windows]
        if missing:
            raise ValueError(f"payout_windows: missing channel(s) {', '.join(missing)}")
        return self


class CalendarConfig(Section):
    """Used only for years the chinese-calendar package does not cover (Mon–Fri otherwise)."""

    fallback_holidays: tuple[date, ...] = ()
    fallback_workdays: tuple[date, ...] = ()  # make-up working days (调休) on weekends

    @model_validator(mode="after")
    def _disjoint(self) -> CalendarConfig:
        both = set(self.fallback_holidays) & set(self.fallback_workdays)
        if both:
            days = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"a day cannot be both a holiday and a working day: {days}")
        return self


class LegalRef(Section):
    cite: dict[str, str]  # locale -> citation, e.g. 《消费者权益保护法》第二十五条
    summary: dict[str, str]  # locale -> one-sentence explanation

    @model_validator(mode="after")
    def _locales(self) -> LegalRef:
        for name in ("cite", "summary"):
            missing = [loc for loc in LOCALES if not getattr(self, name).get(loc)]
            if missing:
                raise ValueError(f"{name}: missing locale(s) {', '.join(missing)}")
        return self


# The rules cite these keys; config.yaml must define each of them.
REQUIRED_LEGAL_REFS: tuple[str, ...] = (
    "cpl_25",
    "measures_art7",
    "impl_reg_19",
    "cpl_44",
    "cpl_53",
    "spc_prepaid_2025",
    "ecl_49",
    "complaint_12315",
)


class StoreConfig(Section):
    # Where the store lives: sqlite:///var/refund-bot.sqlite3 (the default; a relative path is taken
    # from this file's folder), sqlite:////absolute/file.sqlite3, or
    # postgresql://user@host:5432/database. REFUND_BOT_DATABASE_URL in the environment overrides
    # it, so a password never sits in config.yaml. A url wins over path. After loading, a SQLite
    # store is always given by `path` (absolute) and `url` is left empty; `target` is the store.
    url: str | None = None
    path: Path = Path("var/refund-bot.sqlite3")  # shorthand for url: sqlite:///PATH
    # the ids of handled updates are kept this long against redelivery (Telegram holds an
    # unconfirmed update for at most 24 hours), then forgotten by a daily job
    processed_retention_days: int = Field(default=7, ge=2)
    # how long a SQLite unit of work waits for another connection's write lock before it fails
    # (StoreBusy: the adapter retries the turn with backoff, then apologises)
    busy_timeout_ms: int = Field(default=5000, ge=1, le=60_000)

    @field_validator("url")
    @classmethod
    def _a_store_url(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                parse_store_url(url)
            except BadStoreUrl as exc:
                raise ValueError(str(exc)) from None
        return url

    @property
    def target(self) -> StoreUrl:
        """The store this config names (`url`, else the SQLite file at `path`)."""
        return parse_store_url(self.url if self.url is not None else sqlite_url(self.path))


class WebhookConfig(Section):
    listen: str = "127.0.0.1"
    port: int = Field(default=8443, ge=1, le=65535)
    url: str | None = None  # the public https URL Telegram posts to
    path: str = "telegram"


class TelegramConfig(Section):
    mode: Literal["polling", "webhook"] = "polling"
    webhook: WebhookConfig = WebhookConfig()
    base_url: str | None = None  # e.g. http://127.0.0.1:8081/bot for a self-hosted Bot API server
    base_file_url: str | None = None
    # updates per customer per minute; past it one polite answer, then drops until the minute ends
    incoming_rate_limit: int = Field(default=20, ge=1, le=1000)
    # an album arrives as one update per file: wait this long after the last one, then handle all
    album_wait_seconds: float = Field(default=1.0, gt=0, le=10)
    # deliver messages written elsewhere (agent desk, CLI) and retry failed sends this often
    outbox_interval_seconds: float = Field(default=5.0, gt=0, le=3600)
    reminder_interval_seconds: float = Field(default=60.0, gt=0, le=3600)
    concurrent_updates: int = Field(default=64, ge=1, le=1024)  # different chats at once
    # download each evidence file (within Telegram's 20 MB) to check its bytes against its type
    # (JPEG/PNG photos, PDFs) and hash it for duplicates; false: trust Telegram's MIME type
    check_file_content: bool = True
    # also keep the downloaded files here, as <sha256><suffix>; null: keep none
    evidence_download_dir: Path | None = None
    # the Bot API through a proxy (http://, https://, socks5://); null: HTTPS_PROXY/ALL_PROXY from
    # the environment, as httpx reads them
    proxy: str | None = None

    @model_validator(mode="after")
    def _webhook_url(self) -> TelegramConfig:
        if self.mode == "webhook" and not self.webhook.url:
            raise ValueError("webhook.url is required when mode is webhook")
        if self.webhook.url and not self.webhook.url.startswith("https://"):
            raise ValueError("webhook.url must start with https://")
        return self


class Contact(Section):
    """Where a customer reaches a person when no agent desk is configured (told as it is)."""

    hotline: str = ""
    hours: str = ""
    email: str = ""


class BusinessHours(Section):
    """When people answer at the desk, on the calendar's working days (Asia/Shanghai)."""

    start: time = time(9, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class AgentDesk(Section):
    chat_id: int | None = None  # the agents' supergroup
    agent_ids: tuple[int, ...] = ()  # numeric Telegram user ids allowed to act on tickets
    transcript_lines: int = Field(default=10, ge=0, le=20)  # of the conversation, on the card
    queue_size: int = Field(default=20, ge=1, le=50)  # tickets listed by /queue
    # how often overdue reviews and payouts are looked for (the deadlines live in the store)
    deadline_check_seconds: float = Field(default=300.0, gt=0, le=86400)
    # standard replies, message keys standard.reject.<name>, standard.need.<name>,
    # standard.reply.<name> in both catalogs: offered as buttons by /reject, /need and /reply
    reject_reasons: tuple[str, ...] = ("material_unclear", "service_used", "outside_seven_days")
    need_requests: tuple[str, ...] = ("order_screenshot", "payment_proof", "benefit_screenshot")
    replies: tuple[str, ...] = ("greeting", "checking", "payout_timing")
    contact: Contact = Contact()  # offered instead of a person while chat_id is unset
    hours: BusinessHours | None = None  # None: people answer at any time


class Dialogue(Section):
    reminder_after_minutes: int = Field(default=120, ge=1)
    misunderstood_before_agent: int = Field(default=3, ge=1)
    link_attempts: int = Field(default=5, ge=1, le=20)
    # after the failed attempts the order-number check pauses this long, then the count starts over
    link_lock_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    # failed checks of one order across every account before that order pauses as well
    link_attempts_per_order: int = Field(default=10, ge=1, le=100)
    # written explanations a customer may add to one supplement or appeal; every one is kept whole
    max_notes: int = Field(default=20, ge=1, le=100)
    # buttons per page of a long list (orders, tickets); Telegram refuses a keyboard past 100
    page_size: int = Field(default=12, ge=3, le=50)


class MetricsConfig(Section):
    """`run`'s own HTTP port: /metrics (Prometheus), /healthz (alive), /readyz (ready)."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (tests)
    # ready only while Telegram answered within this many seconds (a getMe probes when idle)
    telegram_fresh_seconds: float = Field(default=180.0, gt=0)


class LogConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: one readable line per event; json: one JSON object per line for log collectors
    format: Literal["text", "json"] = "text"


class Config(Section):
    locale: Literal["zh-CN", "en"] = "zh-CN"
    policy: Policy = Policy()
    calendar: CalendarConfig = CalendarConfig()
    legal: dict[str, LegalRef] = Field(default_factory=dict)
    store: StoreConfig = StoreConfig()
    telegram: TelegramConfig = TelegramConfig()
    agent_desk: AgentDesk = AgentDesk()
    dialogue: Dialogue = Dialogue()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _legal_refs(self) -> Config:
        missing = [k for k in REQUIRED_LEGAL_REFS if k not in self.legal]
        if missing:
            raise ValueError(f"legal: missing reference(s) {', '.join(missing)}")
        return self


class ConfigError(Exception):
    """A config problem a person can fix; str() names the field and the problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_MESSAGES: dict[str, str] = {
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown field (check the spelling)",
    "missing": "is required",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "date_from_datetime_parsing": "must be a date like 2027-01-01",
    "date_parsing": "must be a date like 2027-01-01",
    "date_type": "must be a date like 2027-01-01",
    "too_short": "must not be empty",
}


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    ctx = error.get("ctx") or {}
    template = _MESSAGES.get(error["type"])
    if template is not None:
        text = template.format(**ctx)
    elif error["type"] in ("enum", "literal_error"):
        text = f"must be one of {ctx.get('expected', '')}"
    elif error["type"] == "value_error":
        text = str(ctx.get("error", error["msg"]))
    else:
        text = error["msg"][0].lower() + error["msg"][1:]
    return f"{where}: {text}"


def parse_config(data: Any, base_dir: Path | None = None) -> Config:
    """Validate a config mapping; relative store paths are taken from `base_dir`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["(top level): must be a mapping of sections"])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        raise ConfigError(problems) from None
    target = config.store.target
    if base_dir is not None:
        target = target.resolved(base_dir)
    config = with_store(config, target)
    folder = config.telegram.evidence_download_dir
    if base_dir is not None and folder is not None and not folder.is_absolute():
        telegram = config.telegram.model_copy(update={"evidence_download_dir": base_dir / folder})
        config = config.model_copy(update={"telegram": telegram})
    return config


def with_store(config: Config, target: StoreUrl) -> Config:
    """`config` using the store at `target` (a SQLite one by its path: see StoreConfig)."""
    update: dict[str, object] = {"url": target.url}
    if target.path is not None:
        update = {"url": None, "path": target.path}
    return config.model_copy(update={"store": config.store.model_copy(update=update)})


DATABASE_URL_ENV = "REFUND_BOT_DATABASE_URL"


def with_database_url(config: Config, env: Mapping[str, str] = os.environ) -> Config:
    """`config` with REFUND_BOT_DATABASE_URL, when set, in place of store.url (ConfigError
    naming the variable when it is not a store URL)."""
    text = env.get(DATABASE_URL_ENV) or None
    if text is None:
        return config
    try:
        target = parse_store_url(text)
    except BadStoreUrl as exc:
        raise ConfigError([f"{DATABASE_URL_ENV}: {exc}"]) from None
    return with_store(config, target)


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> Config:
    """Read and validate config.yaml; ConfigError names every bad field."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError([f"{path}{where}: {problem}"]) from None
    if overrides:
        data = deep_merge(data or {}, overrides)
    return parse_config(data, base_dir=path.resolve().parent)


def deep_merge(base: Any, override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, mapping by mapping (for test and dialogue overrides)."""
    merged: dict[str, Any] = dict(base) if isinstance(base, dict) else {}
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Secrets:
    """Secrets never live in config.yaml."""

    token: str | None
    webhook_secret: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Secrets:
        return cls(
            token=env.get("REFUND_BOT_TOKEN") or None,
            webhook_secret=env.get("REFUND_BOT_WEBHOOK_SECRET") or None,
        )

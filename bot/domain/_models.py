"""Domain models. No IO here: these are values the rules, the engine and the store pass around."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Category(StrEnum):
    VIDEO_MEMBERSHIP = "video_membership"
    COURSE = "course"
    GYM = "gym"
    GAME_POINTS = "game_points"
    PHONE_TOPUP = "phone_topup"
    OTHER = "other"


class PaymentChannel(StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"
    BANK_CARD = "bank_card"


class MerchantStatus(StrEnum):
    ACTIVE = "active"
    UNREACHABLE = "unreachable"
    CLOSED = "closed"


class Reason(StrEnum):
    SEVEN_DAY = "seven_day"  # 七天无理由
    SERVICE_ISSUE = "service_issue"  # 服务未达标
    MISTAKEN_PURCHASE = "mistaken_purchase"  # 误购/重复购买
    OTHER = "other"  # 其他


class SubReason(StrEnum):
    # seven_day: chosen by the customer when the order shows activated but was never really used
    ACTIVATION_DISPUTE = "activation_dispute"
    # service_issue
    BENEFITS_MISSING = "benefits_missing"  # 权益缺失/降级
    CONTENT_MISMATCH = "content_mismatch"  # 内容不符
    MERCHANT_UNREACHABLE = "merchant_unreachable"  # 商家失联/门店倒闭
    SERVICE_INTERRUPTED = "service_interrupted"  # 服务中断
    # mistaken_purchase
    MISTAKEN = "mistaken"  # 误购
    DUPLICATE = "duplicate"  # 重复购买


SUB_REASONS: dict[Reason, tuple[SubReason, ...]] = {
    Reason.SEVEN_DAY: (SubReason.ACTIVATION_DISPUTE,),
    Reason.SERVICE_ISSUE: (
        SubReason.BENEFITS_MISSING,
        SubReason.CONTENT_MISMATCH,
        SubReason.MERCHANT_UNREACHABLE,
        SubReason.SERVICE_INTERRUPTED,
    ),
    Reason.MISTAKEN_PURCHASE: (SubReason.MISTAKEN, SubReason.DUPLICATE),
    Reason.OTHER: (),
}


class EvidenceKind(StrEnum):
    PHOTO = "photo"
    PDF = "pdf"
    DOCUMENT = "document"  # any other document type the config allows
    VIDEO = "video"


class SentAs(StrEnum):
    """How the messenger carried a file: it must be sent on the same way (Telegram refuses a
    document's file id as a photo, though both may be a screenshot the rules call a photo)."""

    PHOTO = "photo"
    DOCUMENT = "document"
    VIDEO = "video"
    VIDEO_NOTE = "video_note"
    AUDIO = "audio"
    VOICE = "voice"


class Customer(Frozen):
    customer_id: int
    phone: str  # E.164, e.g. +8613800138000
    name: str
    locale: str | None = None


class Order(Frozen):
    """One paid order as imported from the shop. Amounts are fen."""

    order_id: str = Field(min_length=1, max_length=64)
    phone: str
    customer_name: str
    product_name: str
    category: Category
    list_price_fen: int = Field(ge=0)
    cash_paid_fen: int = Field(ge=0)
    coupon_fen: int = Field(ge=0, default=0)
    coupon_refundable: bool = False
    paid_at: AwareDatetime
    service_start: AwareDatetime
    service_end: AwareDatetime
    activated_at: AwareDatetime | None = None
    activation_exclusion_confirmed: bool = False
    used_days: int = Field(ge=0, default=0)
    payment_channel: PaymentChannel
    seven_day_supported: bool = True
    merchant_status: MerchantStatus = MerchantStatus.ACTIVE

    @model_validator(mode="after")
    def _consistent(self) -> Order:
        if self.service_end <= self.service_start:
            raise ValueError("service_end must be after service_start")
        if self.cash_paid_fen + self.coupon_fen > self.list_price_fen:
            raise ValueError("cash_paid + coupon_amount must not exceed list_price")
        if self.used_days > self.total_days:
            raise ValueError("used_days must not exceed the service period")
        return self

    @property
    def total_days(self) -> int:
        return (self.service_end - self.service_start).days

    @property
    def is_activated(self) -> bool:
        return self.activated_at is not None

    @property
    def is_used(self) -> bool:
        return self.activated_at is not None or self.used_days > 0


class TicketStatus(StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REFUNDING = "refunding"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    APPEALED = "appealed"
    REFUND_FAILED = "refund_failed"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"


# A ticket in one of these still holds its order: no second ticket may be opened for it.
OPEN_STATUSES: frozenset[TicketStatus] = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.IN_REVIEW,
        TicketStatus.NEEDS_INFO,
        TicketStatus.APPROVED,
        TicketStatus.REFUNDING,
        TicketStatus.APPEALED,
        TicketStatus.REFUND_FAILED,
    }
)


class Priority(StrEnum):
    NORMAL = "normal"
    FAST = "fast"  # unused mistaken purchase: quick review
    HIGH = "high"  # 退款优先通道: the platform is liable first (CPL Art. 44)


class Outcome(StrEnum):
    AUTO_APPROVE = "auto_approve"  # 极速退款 or verified duplicate: approved at submission
    REVIEW = "review"  # an agent decides within the review deadline
    AGENT = "agent"  # straight to a person (reason "other")
    REFUSED = "refused"  # not eligible under this reason; the explanation says why


class BreakdownLine(Frozen):
    """One line of the itemised amount: a message key, a signed amount in fen, parameters."""

    key: str
    amount_fen: int
    params: dict[str, str | int] = Field(default_factory=dict)


class EvidenceRequirement(Frozen):
    min_count: int
    max_files: int
    max_size_bytes: int
    allowed_kinds: tuple[EvidenceKind, ...]
    hint_key: str  # what to show, e.g. "evidence.hint.activation_dispute"


class Quote(Frozen):
    """The rules' decision for one order + reason at one moment: the pre-check a customer sees."""

    order_id: str
    reason: Reason
    sub_reason: SubReason | None
    outcome: Outcome
    amount_fen: int  # what the customer may ask for at most (default of the amount step)
    cap_fen: int  # cash_paid − already_refunded: what an agent may approve at most
    breakdown: tuple[BreakdownLine, ...]
    coupon_returned_fen: int  # returned as a coupon, never as cash
    evidence: EvidenceRequirement
    priority: Priority
    review_due: date | None  # last working day of the review (None when auto-approved/refused)
    payout_window: tuple[int, int]  # working days after approval, by the payment channel
    explanation: tuple[str, ...]  # message keys, in order
    explanation_params: dict[str, str | int] = Field(default_factory=dict)
    legal_refs: tuple[str, ...]  # keys into config `legal`: this decision's basis, each once
    offers: tuple[str, ...] = ()  # alternative paths, e.g. "activation_dispute", "agent"
    # which policy decided: "<rules version>+<hash of config `policy`>" (None: decided before
    # fingerprints were recorded)
    policy_fingerprint: str | None = None


class TicketSummary(Frozen):
    """What the rules need to know about a customer's earlier tickets."""

    ticket_no: str
    order_id: str
    status: TicketStatus
    created_at: AwareDatetime
    rejected_at: AwareDatetime | None = None


class History(Frozen):
    """Everything about the customer the rules may look at, gathered by the caller."""

    orders: tuple[Order, ...] = ()  # the customer's orders (the current one may be among them)
    tickets: tuple[TicketSummary, ...] = ()
    refunded_fen: int = Field(ge=0, default=0)  # pending + paid refunds of the order assessed


class Ticket(Frozen):
    ticket_no: str
    order_id: str
    customer_id: int
    reason: Reason
    sub_reason: SubReason | None = None
    status: TicketStatus = TicketStatus.SUBMITTED
    priority: Priority = Priority.NORMAL
    requested_fen: int = Field(ge=0)
    approved_fen: int | None = Field(default=None, ge=0)
    quote: Quote
    review_due: date | None = None
    payout_due: date | None = None
    appeal_count: int = Field(ge=0, default=0)
    assignee: int | None = None  # the agent's Telegram user id holding the ticket
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: int = 1


class Evidence(Frozen):
    evidence_id: int | None = None
    ticket_no: str | None = None  # None while still in a conversation, before the ticket exists
    kind: EvidenceKind
    file_id: str
    file_unique_id: str
    size_bytes: int = Field(ge=0)
    mime_type: str | None = None
    caption: str | None = None
    sha256: str | None = None
    added_at: AwareDatetime
    sent_as: SentAs | None = None  # None: stored before it was recorded (re-sent by its kind)


class TicketEvent(Frozen):
    """One line of the audit trail and of the customer's timeline."""

    event_id: int | None = None
    ticket_no: str
    at: AwareDatetime
    actor: str  # "customer:<id>", "agent:<telegram id>", "system", "cli"
    kind: str  # "submitted", "approved", "status:needs_info", "note", ...
    from_status: TicketStatus | None = None
    to_status: TicketStatus | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class RefundState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


class Payout(Frozen):
    """Money going out under an idempotency key saved before the money moves."""

    idempotency_key: str
    ticket_no: str
    order_id: str
    amount_fen: int = Field(gt=0)
    channel: PaymentChannel
    state: RefundState = RefundState.PENDING
    created_at: AwareDatetime


class RefundEntry(Payout):
    """A payout in the refunds ledger: the price refund, capped by cash paid − refunded."""


class CompensationKind(StrEnum):
    """What CPL Art. 53 adds to the refund of a prepayment."""

    INTEREST = "interest"  # interest on the prepayment
    COSTS = "costs"  # reasonable costs the customer had to bear


class CompensationEntry(Payout):
    """A compensation payout, kept in its own ledger apart from the price refund and its cap."""

    kind: CompensationKind
    actor: str  # the agent who added it

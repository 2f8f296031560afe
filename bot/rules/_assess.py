"""The shared eligibility rules (SPEC §2). Pure: every input is an argument, `now` included.

The bot, the agent desk and the tests call `assess`; nothing else re-implements a rule.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta

from bot.calendar import WorkingCalendar
from bot.config import Policy
from bot.domain import (
    OPEN_STATUSES,
    SUB_REASONS,
    CompensationKind,
    EvidenceRequirement,
    History,
    MerchantStatus,
    Order,
    Outcome,
    Priority,
    Quote,
    Reason,
    SubReason,
    Ticket,
    TicketStatus,
)
from bot.localtime import to_local
from bot.rules._amounts import Amount, refund_amount, usage

Params = dict[str, str | int]

# The rules' version, part of every decision's policy fingerprint: raise it whenever a rule
# changes what it decides for the same policy (docs/rules.md lists what each version changed).
RULES_VERSION = "2026.12"

# The legal basis of each kind of decision (keys into config `legal`), each article once.
SEVEN_DAY_LAW = ("cpl_25",)
EXCLUSION_LAW = ("cpl_25", "measures_art7", "impl_reg_19")
DISPUTE_LAW = ("cpl_25", "measures_art7", "ecl_49")
PREPAID_LAW = ("cpl_53", "spc_prepaid_2025")
PLATFORM_LAW = ("cpl_44", *PREPAID_LAW)
NO_STATUTE: tuple[str, ...] = ()  # mistaken / duplicate purchase, other: platform policy

_fingerprint_memo: list[tuple[Policy, str]] = []


def policy_fingerprint(policy: Policy) -> str:
    """`<rules version>+<12 hex of sha256 of the policy section>`: which policy decided."""
    if _fingerprint_memo and _fingerprint_memo[0][0] is policy:
        return _fingerprint_memo[0][1]
    canonical = json.dumps(policy.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    fingerprint = f"{RULES_VERSION}+{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"
    _fingerprint_memo[:] = [(policy, fingerprint)]
    return fingerprint


def seven_day_last_day(order: Order, policy: Policy, cal: WorkingCalendar) -> date:
    """The last calendar day (Asia/Shanghai) of the seven-day no-reason window.

    The period starts the day after purchase or service start, whichever is later (Civil Code
    Art. 201; the 2017 Measures count 七日 from the day after receipt), so a purchase on the
    20th may be returned through the 27th. When that day is a rest day (weekend or public
    holiday; a 调休 make-up day is a working day) the window ends on the next working day
    (Art. 203), unless `policy.seven_day.extend_to_working_day` is off.
    """
    start = max(order.paid_at, order.service_start)
    last = to_local(start).date() + timedelta(days=policy.seven_day.window_days)
    return cal.on_or_after(last) if policy.seven_day.extend_to_working_day else last


def review_due(
    submitted: datetime, priority: Priority, policy: Policy, cal: WorkingCalendar
) -> date:
    """The last working day of the review: 1–3 working days, 1 on the priority channel."""
    days = (
        policy.review.normal_working_days
        if priority is Priority.NORMAL
        else policy.review.priority_working_days
    )
    return cal.add_working_days(to_local(submitted).date(), days)


def payout_due(approved: datetime, order: Order, policy: Policy, cal: WorkingCalendar) -> date:
    """The last working day the money may take to arrive by the order's payment channel."""
    window = policy.payout_windows[order.payment_channel]
    return cal.add_working_days(to_local(approved).date(), window.max_working_days)


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    """A review or payout whose last working day has passed (Asia/Shanghai)."""
    today = to_local(now).date()
    if ticket.status in (TicketStatus.SUBMITTED, TicketStatus.IN_REVIEW, TicketStatus.APPEALED):
        return ticket.review_due is not None and today > ticket.review_due
    if ticket.status in (TicketStatus.APPROVED, TicketStatus.REFUNDING):
        return ticket.payout_due is not None and today > ticket.payout_due
    return False


def can_appeal(ticket: Ticket, policy: Policy) -> bool:
    """A rejected ticket may be appealed `policy.max_appeals` times (once by default)."""
    return ticket.status is TicketStatus.REJECTED and ticket.appeal_count < policy.max_appeals


def check_requested_amount(quote: Quote, requested_fen: int) -> str | None:
    """None if the customer may ask for this amount, else the message key of the refusal."""
    if requested_fen <= 0:
        return "amount.error.not_positive"
    if requested_fen > quote.amount_fen:
        return "amount.error.above_max"
    return None


def coupon_returned(quote: Quote, refund_fen: int) -> int:
    """The coupon given back for a refund of `refund_fen`: only a full refund returns it."""
    return quote.coupon_returned_fen if refund_fen == quote.amount_fen else 0


def compensation_cap(kind: CompensationKind, policy: Policy) -> int:
    """The most an agent may add of this kind of compensation to one ticket."""
    rule = policy.compensation
    return rule.max_interest if kind is CompensationKind.INTEREST else rule.max_costs


def check_compensation(
    ticket: Ticket, kind: CompensationKind, amount_fen: int, granted_fen: int, policy: Policy
) -> str | None:
    """None if an agent may add this CPL Art. 53 compensation to the ticket, else the message key.

    Only for the configured reasons (a prepayment not honoured), on an approved ticket whose
    payout is not yet confirmed, and within the policy's cap per kind (`granted_fen`: this kind
    already added to the ticket). It is apart from the price refund and its cap.
    """
    if ticket.reason not in policy.compensation.reasons:
        return "agent.error.compensation_reason"
    if ticket.status not in (TicketStatus.APPROVED, TicketStatus.REFUNDING):
        return "agent.error.compensation_status"
    if amount_fen <= 0:
        return "agent.error.amount_not_positive"
    if granted_fen + amount_fen > compensation_cap(kind, policy):
        return "agent.error.compensation_above_cap"
    return None


def check_approved_amount(order: Order, refunded_fen: int, approved_fen: int) -> str | None:
    """None if an agent may approve this amount: at most cash paid − already refunded."""
    if approved_fen <= 0:
        return "agent.error.amount_not_positive"
    if approved_fen > max(order.cash_paid_fen - refunded_fen, 0):
        return "agent.error.amount_above_cap"
    return None


def assess(
    order: Order,
    reason: Reason,
    sub_reason: SubReason | None,
    now: datetime,
    policy: Policy,
    cal: WorkingCalendar,
    history: History,
) -> Quote:
    """Decide one refund request: outcome, amount with breakdown, evidence, deadline, reasons."""
    if sub_reason is not None and sub_reason not in SUB_REASONS[reason]:
        raise ValueError(f"sub-reason {sub_reason.value} does not belong to {reason.value}")
    if reason in (Reason.SERVICE_ISSUE, Reason.MISTAKEN_PURCHASE) and sub_reason is None:
        raise ValueError(f"reason {reason.value} needs a sub-reason")
    return _Assessment(order, reason, sub_reason, now, policy, cal, history).run()


class _Assessment:
    """One call of `assess`; a class only to share its inputs between the per-reason steps."""

    def __init__(
        self,
        order: Order,
        reason: Reason,
        sub_reason: SubReason | None,
        now: datetime,
        policy: Policy,
        cal: WorkingCalendar,
        history: History,
    ) -> None:
        self.order, self.reason, self.sub = order, reason, sub_reason
        self.now, self.policy, self.cal, self.history = now, policy, cal, history
        self.cap = max(order.cash_paid_fen - history.refunded_fen, 0)

    def run(self) -> Quote:
        open_ticket = next(
            (
                t
                for t in self.history.tickets
                if t.order_id == self.order.order_id and t.status in OPEN_STATUSES
            ),
            None,
        )
        if open_ticket is not None:
            return self._refused(
                ["precheck.refused.open_ticket"], {"ticket_no": open_ticket.ticket_no}
            )
        if self.cap == 0:
            return self._refused(["precheck.refused.nothing_left"])
        if self.reason is Reason.SEVEN_DAY:
            return self._seven_day()
        if self.reason is Reason.SERVICE_ISSUE:
            return self._service_issue()
        if self.reason is Reason.MISTAKEN_PURCHASE:
            return self._mistaken()
        return self._quote(
            Outcome.AGENT,
            refund_amount(self.order, self.history.refunded_fen, None),
            ["precheck.other"],
            legal=NO_STATUTE,
        )

    # -- reasons ----------------------------------------------------------------------------

    def _seven_day(self) -> Quote:
        order, policy = self.order, self.policy
        offers = ("service_issue", "mistaken_purchase", "agent")
        basis = policy.seven_day.excluded_categories.get(order.category)
        confirmed = order.activation_exclusion_confirmed
        category: Params = {"category": order.category.value}
        if basis == "statutory":
            return self._refused(
                ["precheck.seven_day.excluded_category"], category, SEVEN_DAY_LAW, offers
            )
        if basis == "by_nature" and confirmed:
            return self._refused(
                ["precheck.seven_day.excluded_confirmed"], category, EXCLUSION_LAW, offers
            )
        if not order.seven_day_supported:
            return self._refused(["precheck.seven_day.not_supported"], None, SEVEN_DAY_LAW, offers)
        last_day = seven_day_last_day(order, policy, self.cal)
        params: Params = {
            "last_day": last_day.isoformat(),
            "window_days": policy.seven_day.window_days,
        }
        if to_local(self.now).date() > last_day:
            return self._refused(
                ["precheck.seven_day.window_passed"], params, SEVEN_DAY_LAW, offers
            )
        full = refund_amount(order, self.history.refunded_fen, None)
        eligible = self._full("precheck.seven_day.eligible")
        if basis == "by_nature" or (order.is_used and not confirmed):
            # An exclusion the customer did not confirm at purchase is no ground to refuse
            # (Measures Art. 7–8, Implementing Regulations Art. 19): eligible, for review, and
            # the platform's own usage record answers what evidence would have.
            why = (
                "precheck.seven_day.category_not_confirmed"
                if basis
                else "precheck.activation.not_confirmed"
            )
            evidence = self.policy.evidence.requirement(self.reason, None).model_copy(
                update={"min_count": 0, "hint_key": "evidence.hint.seven_day_platform_record"}
            )
            return self._quote(
                Outcome.REVIEW,
                full,
                [why, eligible],
                EXCLUSION_LAW,
                {**params, **category, "used_days": order.used_days},
                evidence=evidence,
            )
        if order.is_used:  # activated, and the customer confirmed the exclusion at purchase
            confirmation = "precheck.activation.confirmed"
            if self.sub is not SubReason.ACTIVATION_DISPUTE:
                # Not a plain refusal: explain the activation rule and offer the dispute path.
                return self._refused(
                    ["precheck.seven_day.activated", confirmation],
                    params,
                    EXCLUSION_LAW,
                    offers=("activation_dispute", *offers),
                )
            return self._quote(
                Outcome.REVIEW,
                full,
                ["precheck.activation_dispute", confirmation],
                DISPUTE_LAW,
                params,
            )
        keys = [eligible]
        if self._fast_refund(full):
            return self._quote(
                Outcome.AUTO_APPROVE, full, [*keys, "precheck.fast_refund"], SEVEN_DAY_LAW, params
            )
        return self._quote(Outcome.REVIEW, full, keys, SEVEN_DAY_LAW, params)

    def _service_issue(self) -> Quote:
        order, sub = self.order, self.sub
        nothing_delivered = order.used_days == 0
        amount = refund_amount(
            order,
            self.history.refunded_fen,
            None if nothing_delivered else usage(order, self.policy.pro_rata_unit),
        )
        keys = [
            f"precheck.service.{sub.value if sub else 'unknown'}",
            self._full("precheck.service.full")
            if nothing_delivered
            else "precheck.service.pro_rata",
            "precheck.service.agent_may_adjust",
        ]
        legal: tuple[str, ...] = PREPAID_LAW
        priority = Priority.NORMAL
        if sub is SubReason.MERCHANT_UNREACHABLE:
            priority = Priority.HIGH
            legal = PLATFORM_LAW
            if order.merchant_status is not MerchantStatus.ACTIVE:
                keys.insert(1, "precheck.service.merchant_status_on_record")
        return self._quote(Outcome.REVIEW, amount, keys, legal, priority=priority)

    def _mistaken(self) -> Quote:
        order = self.order
        if not order.is_used:
            full = refund_amount(order, self.history.refunded_fen, None)
            if self.sub is SubReason.DUPLICATE:
                original = self._verified_duplicate_of()
                if original is not None:
                    return self._quote(
                        Outcome.AUTO_APPROVE,
                        full,
                        ["precheck.duplicate.verified"],
                        NO_STATUTE,
                        {"original_order_id": original.order_id},
                    )
                keys = ["precheck.duplicate.not_verified", self._full("precheck.mistaken.unused")]
            else:
                keys = [self._full("precheck.mistaken.unused")]
            if self._fast_refund(full):
                return self._quote(
                    Outcome.AUTO_APPROVE, full, [*keys, "precheck.fast_refund"], NO_STATUTE
                )
            return self._quote(Outcome.REVIEW, full, keys, NO_STATUTE, priority=Priority.FAST)
        amount = refund_amount(
            order, self.history.refunded_fen, usage(order, self.policy.pro_rata_unit)
        )
        return self._quote(Outcome.REVIEW, amount, ["precheck.mistaken.partly_used"], NO_STATUTE)

    # -- conditions -------------------------------------------------------------------------

    def _verified_duplicate_of(self) -> Order | None:
        """Another order of the same customer and product, paid within the configured window,
        that is not itself being refunded or refunded."""
        window = timedelta(hours=self.policy.duplicate_purchase.window_hours)
        claimed = {
            t.order_id for t in self.history.tickets if t.status is not TicketStatus.WITHDRAWN
        }
        for other in self.history.orders:
            if (
                other.order_id != self.order.order_id
                and other.phone == self.order.phone
                and other.product_name == self.order.product_name
                and abs(other.paid_at - self.order.paid_at) <= window
                and other.order_id not in claimed
            ):
                return other
        return None

    def _fast_refund(self, amount: Amount) -> bool:
        """极速退款: configured reason, unused, small amount, no recent rejection, and nothing
        refunded on the order yet (a second refund of an order is a person's decision)."""
        rule = self.policy.fast_refund
        if not rule.enabled or self.reason not in rule.reasons or self.order.is_used:
            return False
        if self.history.refunded_fen:
            return False
        if amount.amount_fen > rule.max_amount:
            return False
        since = self.now - timedelta(days=rule.no_rejection_within_days)
        return not any(
            t.rejected_at is not None and t.rejected_at >= since for t in self.history.tickets
        )

    def _full(self, key: str) -> str:
        """The "full refund" wording, or its "what is left" variant when earlier refunds of the
        order took part of the cash: a partial amount is never described as full."""
        return f"{key}_remaining" if self.history.refunded_fen else key

    # -- building the quote -----------------------------------------------------------------

    def _refused(
        self,
        keys: list[str],
        params: Params | None = None,
        legal: tuple[str, ...] = (),
        offers: tuple[str, ...] = ("agent",),
    ) -> Quote:
        nothing = Amount(0, (), 0)
        return self._quote(Outcome.REFUSED, nothing, keys, legal, params, offers=offers)

    def _quote(
        self,
        outcome: Outcome,
        amount: Amount,
        keys: list[str],
        legal: tuple[str, ...],
        params: Params | None = None,
        priority: Priority = Priority.NORMAL,
        offers: tuple[str, ...] = (),
        evidence: EvidenceRequirement | None = None,
    ) -> Quote:
        if self.history.refunded_fen and outcome is not Outcome.REFUSED:
            # a second refund of an order is a person's decision (who may adjust within the cap)
            keys = [*keys, "precheck.earlier_refunds"]
            if outcome is Outcome.AUTO_APPROVE:
                outcome = Outcome.REVIEW
        due = (
            review_due(self.now, priority, self.policy, self.cal)
            if outcome in (Outcome.REVIEW, Outcome.AGENT)
            else None
        )
        window = self.policy.payout_windows[self.order.payment_channel]
        if amount.amount_fen == 0 and outcome is not Outcome.REFUSED:
            outcome, keys, offers = (
                Outcome.REFUSED,
                [*keys, "precheck.refused.zero_amount"],
                ("agent",),
            )
            due = None
        return Quote(
            order_id=self.order.order_id,
            reason=self.reason,
            sub_reason=self.sub,
            outcome=outcome,
            amount_fen=amount.amount_fen,
            cap_fen=self.cap,
            breakdown=amount.lines,
            coupon_returned_fen=amount.coupon_returned_fen,
            evidence=evidence or self.policy.evidence.requirement(self.reason, self.sub),
            priority=priority if outcome is not Outcome.REFUSED else Priority.NORMAL,
            review_due=due,
            payout_window=(window.min_working_days, window.max_working_days),
            explanation=tuple(keys),
            explanation_params={
                **(params or {}),
                "amount_fen": amount.amount_fen,
                "cap_fen": self.cap,
                "refunded_fen": self.history.refunded_fen,
            },
            legal_refs=tuple(dict.fromkeys(legal)),
            offers=offers,
            policy_fingerprint=policy_fingerprint(self.policy),
        )

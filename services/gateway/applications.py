"""The application aggregate's states and the rules for moving between them (pure, no I/O).

The gateway is the only writer of application state. Every write goes through `transition()`,
which refuses an illegal move with a domain error (`illegal_transition`); the HTTP layer maps it to a 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.gateway.domain.errors import DomainError


class State(StrEnum):
    CODE_SUBMITTED = "code_submitted"  # a scan is waiting for the codec
    CODE_REJECTED = "code_rejected"  # the latest scan was refused and no earlier scan verified
    CODE_VERIFIED = "code_verified"  # the code matched what the student typed (seed step 5)
    CONFIRMED = "confirmed"  # the student confirmed the decoded data, year and mailing (step 5)
    PAID = "paid"  # WeChat Pay confirmed the order (step 6); photos may now be taken (7-8)
    SUBMITTED = "submitted"  # a standardised photo was submitted with the admission photo (9-10)
    MATCH_FAILED = "match_failed"  # face comparison below the pass mark: another photo may be tried (11)
    REGISTRAR_REVIEW = "registrar_review"  # several compliant photos failed: the registrar decides (11)
    IN_REVIEW = "in_review"  # comparison passed; waiting for an operator (12)
    APPROVED = "approved"  # 审核通过 (12-13)
    REJECTED = "rejected"  # 审核未通过: free resubmission while some are left (12)
    WITHDRAWN = "withdrawn"  # the student withdrew a submission waiting for review; another may follow
    REFUNDED = "refunded"  # the whole payment went back: withdrawn from review, export and print


class ScanStatus(StrEnum):
    PENDING = "pending"
    DECODED = "decoded"
    REJECTED = "rejected"


class Action(StrEnum):
    SCAN = "scan"
    CODE_DECODED = "code_decoded"
    CODE_REFUSED = "code_refused"
    CONFIRM = "confirm"
    ORDER = "order"
    PAY = "pay"
    UPLOAD_PHOTO = "upload_photo"
    SUBMIT = "submit"
    MATCH_PASSED = "match_passed"
    MATCH_FAILED = "match_failed"
    MATCH_TO_REGISTRAR = "match_to_registrar"
    REVIEW_APPROVED = "review_approved"
    REVIEW_REJECTED = "review_rejected"
    WITHDRAW = "withdraw"
    REFUND = "refund"


class IllegalTransition(DomainError):
    def __init__(self, state: str, action: str) -> None:
        super().__init__("illegal_transition", state=str(state))
        self.state = state
        self.action = action


S, A = State, Action
# (state, action) -> next state. What is not here is refused.
TRANSITIONS: dict[tuple[State, Action], State] = {
    # "重新读取" is allowed until the student confirms.
    **{(s, A.SCAN): S.CODE_SUBMITTED for s in (S.CODE_SUBMITTED, S.CODE_REJECTED, S.CODE_VERIFIED)},
    (S.CODE_SUBMITTED, A.CODE_DECODED): S.CODE_VERIFIED,
    (S.CODE_SUBMITTED, A.CODE_REFUSED): S.CODE_REJECTED,
    (S.CODE_VERIFIED, A.CONFIRM): S.CONFIRMED,
    (S.CONFIRMED, A.CONFIRM): S.CONFIRMED,  # year or mailing changed before paying
    (S.CONFIRMED, A.ORDER): S.CONFIRMED,
    (S.CONFIRMED, A.PAY): S.PAID,
    # Photos can be taken once paid, again after a failed comparison, a review rejection or a withdrawal.
    **{(s, A.UPLOAD_PHOTO): s for s in (S.PAID, S.MATCH_FAILED, S.REJECTED, S.WITHDRAWN)},
    **{(s, A.SUBMIT): S.SUBMITTED for s in (S.PAID, S.MATCH_FAILED, S.REJECTED, S.WITHDRAWN)},
    (S.SUBMITTED, A.MATCH_PASSED): S.IN_REVIEW,
    (S.SUBMITTED, A.MATCH_FAILED): S.MATCH_FAILED,
    (S.SUBMITTED, A.MATCH_TO_REGISTRAR): S.REGISTRAR_REVIEW,
    (S.IN_REVIEW, A.REVIEW_APPROVED): S.APPROVED,
    (S.REGISTRAR_REVIEW, A.REVIEW_APPROVED): S.APPROVED,
    (S.IN_REVIEW, A.REVIEW_REJECTED): S.REJECTED,
    (S.REGISTRAR_REVIEW, A.REVIEW_REJECTED): S.REJECTED,
    # Field practice: a submission still waiting for review can be withdrawn by the student.
    (S.IN_REVIEW, A.WITHDRAW): S.WITHDRAWN,
    # A refund of the whole payment withdraws a paid application wherever it is (domain/orders.py).
    **{
        (s, A.REFUND): S.REFUNDED
        for s in (
            S.PAID,
            S.SUBMITTED,
            S.MATCH_FAILED,
            S.REGISTRAR_REVIEW,
            S.IN_REVIEW,
            S.APPROVED,
            S.REJECTED,
            S.WITHDRAWN,
        )
    },
}


def transition(state: str, action: Action) -> State:
    """The next state, or IllegalTransition."""
    try:
        return TRANSITIONS[(State(state), action)]
    except (KeyError, ValueError):
        raise IllegalTransition(state, action) from None


def allowed_from(action: Action) -> list[str]:
    """States in which `action` is allowed: the guard of a conditional update."""
    return [str(s) for (s, a) in TRANSITIONS if a is action]


def state_after_scan_result(decoded: bool, *, had_verified_code: bool) -> State:
    """A refused re-scan does not undo an earlier verified one: the verified record still stands."""
    if decoded or had_verified_code:
        return State.CODE_VERIFIED
    return State.CODE_REJECTED


@dataclass(frozen=True)
class NextStep:
    action: str  # what the mini-program should offer: a stable code
    label: str  # the button or hint text (Chinese)


NEXT_STEPS: dict[State, NextStep] = {
    S.CODE_SUBMITTED: NextStep("wait", "正在识别采集码，请稍候"),
    S.CODE_REJECTED: NextStep("scan_code", "重新扫描或上传采集码"),
    S.CODE_VERIFIED: NextStep("confirm", "确认采集码信息"),
    S.CONFIRMED: NextStep("pay", "立即支付"),
    S.PAID: NextStep("take_photo", "拍摄或上传照片"),
    S.SUBMITTED: NextStep("wait", "照片已提交，正在进行人像比对"),
    S.MATCH_FAILED: NextStep("take_photo", "人像比对未通过，请更换其他照片"),
    S.REGISTRAR_REVIEW: NextStep("wait", "多张照片比对未通过，已转学校学籍部门处理"),
    S.IN_REVIEW: NextStep("wait", "等待人工审核"),
    S.APPROVED: NextStep("done", "审核通过，请等待照片上传学信网"),
    S.REJECTED: NextStep("take_photo", "审核未通过，可免费重拍提交"),
    S.WITHDRAWN: NextStep("take_photo", "已撤回提交，可重新拍摄或选择照片提交"),
    S.REFUNDED: NextStep("refunded", "费用已退款，本次采集已终止；如有疑问请联系客服"),
}


def delivery_step(delivery: dict[str, object] | None) -> NextStep | None:
    """After approval: how far delivery got (the `delivery` sub-document, console/batches.py)."""
    if not delivery:
        return None
    if delivery.get("mailed_at"):
        return NextStep("done", "照片已上传学信网，纸质照片已邮寄")
    if delivery.get("printed_at"):
        return NextStep("done", "照片已上传学信网，纸质照片已冲印，等待邮寄")
    return NextStep("done", "照片已导出上传学信网，等待冲印")

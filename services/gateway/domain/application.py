"""The application aggregate, typed: parsed from its MongoDB document and written back part by part.

Each part (the latest scan, the photos, the submission, the quota, the order, the review, the delivery)
is a typed value; fields this code does not know are kept as they are (`extra="allow"`), so a document
written by a newer or older gateway survives a round trip. Decisions build the next value with
`model_copy(update=...)` and return `Application.change(...)`: only the top-level fields they name are
written, whole (never through dotted paths: docs/architecture.md, nx-27017).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from services.gateway.applications import ScanStatus, State
from services.gateway.domain.change import Change
from services.gateway.domain.orders import OrderBook, OrderStatus
from services.gateway.domain.rules import SchoolRules
from services.gateway.domain.statuses import DeliveryStatus, PhotoStatus
from services.gateway.quota import Quota
from shared.events import Envelope


def _aware(value: Any) -> Any:
    """Stored times are UTC; nx-27017 hands some back as naive ISO text (docs/architecture.md)."""
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Moment = Annotated[datetime, BeforeValidator(_aware)]


def _order_status(value: Any) -> Any:
    try:
        return OrderStatus(value) if isinstance(value, str) else value
    except ValueError:
        return value


KnownOrderStatus = Annotated[OrderStatus | str | None, BeforeValidator(_order_status)]
QuotaPart = Annotated[
    Quota,
    BeforeValidator(lambda v: v if isinstance(v, Quota) else Quota.from_doc(v)),
    PlainSerializer(lambda q: q.to_doc()),
]


class Part(BaseModel):
    """Read leniently: a stored document is never refused for a field it lacks (old, seeded or migrated
    data); what a decision needs is checked by the decision."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True, populate_by_name=True)

    def doc(self) -> dict[str, Any]:
        """As stored: the fields it was read with or given, nothing invented."""
        document: dict[str, Any] = _plain(self.model_dump(exclude_unset=True, by_alias=True))
        return document


class Scan(Part):
    """The latest code scan (seed 4-5); `scan_id` is new for every scan."""

    scan_id: str
    status: ScanStatus
    source: str = "text"
    image_blob_id: str | None = None
    submitted_at: Moment | None = None
    decided_at: Moment | None = None
    result_event_id: str | None = None
    student: dict[str, Any] | None = None
    reason: str | None = None
    message: str | None = None
    mismatched_fields: list[str] | None = None


class Photo(Part):
    status: PhotoStatus
    source: str = "camera"
    raw_blob_id: str | None = None
    uploaded_at: Moment | None = None
    standardisation_number: int = 0
    decided_at: Moment | None = None
    measures: list[dict[str, Any]] = Field(default_factory=list)
    standardized_blob_id: str | None = None
    placed_blob_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    messages: list[str] = Field(default_factory=list)
    override: dict[str, Any] | None = None
    purged: bool = False


class Submission(Part):
    """The photo submitted with the confirmed admission photo (seed 9-10); the latest one."""

    submission_id: str | None = None
    photo_id: str
    submitted_at: Moment | None = None
    count: int = 1


class Match(Part):
    score: float = 0.0
    passed: bool = False
    photo_id: str | None = None
    # clear_pass / borderline / clear_fail (match.scored.v1, docs/matching.md): shown to the reviewer.
    band: str | None = None
    # match.scored.v1 `flags` (e.g. admission_photo_similar, docs/matching.md): shown to the reviewer.
    flags: list[str] = []


class Failure(Part):
    """Why the student must act again: a stable code and the sentence the status page shows."""

    code: str
    message: str = ""
    at: Moment | None = None


class Review(Part):
    review_id: str | None = None
    decision: str
    reason_code: str | None = None
    reason: str | None = None
    note: str = ""
    operator_id: str | None = None
    photo_id: str | None = None
    from_state: str | None = None
    decided_at: Moment | None = None


class Delivery(Part):
    """After approval: the batch it was exported in, then printed and mailed (console/batches.py)."""

    batch_id: str | None = None
    exported_at: Moment | None = None
    printed_at: Moment | None = None
    mailed_at: Moment | None = None

    @property
    def status(self) -> DeliveryStatus:
        if self.mailed_at:
            return DeliveryStatus.MAILED
        if self.printed_at:
            return DeliveryStatus.PRINTED
        return DeliveryStatus.EXPORTED


class OrderView(Part):
    """The application's current order as the status page reads it (`order`, written by the order book);
    the whole typed ledger is `Application.order_book` (`services/gateway/domain/orders.py`)."""

    out_trade_no: str | None = None
    amount_fen: int | None = None
    status: KnownOrderStatus = None  # a status this code does not know is kept, never refused
    paid_at: Moment | None = None


class Application(Part):
    id: str = Field(alias="_id")
    version: int = 1
    state: State
    owner_openid: str | None = None
    # The owner while the account acts for this application (owned, not merged): unique (domain/binding.py).
    active_owner: str | None = None
    student_id: str | None = None
    school_code: str | None = None
    claim: dict[str, Any] | None = None
    code: Scan | None = None
    verified_code: dict[str, Any] | None = None
    onsite_attendee: bool = False
    confirmation: dict[str, Any] | None = None
    order: OrderView | None = None
    photos: dict[str, Photo] = Field(default_factory=dict)
    quota: QuotaPart = Field(default_factory=Quota)
    submission: Submission | None = None
    admission_photo_confirmed_at: Moment | None = None
    resubmissions_used: int | None = None
    resubmissions_left: int | None = None  # written for readers of the document; computed from the rules
    match: Match | None = None
    last_failure: Failure | None = None
    review: Review | None = None
    reviews: list[Review] = Field(default_factory=list)
    delivery: Delivery | None = None
    retention: dict[str, Any] | None = None
    merged_into: str | None = None
    created_at: Moment | None = None
    updated_at: Moment | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Application:
        return cls.model_validate(doc)

    # --- derived values: every count shown to the student comes from the school's rules ----------

    def resubmissions_spent(self, rules: SchoolRules) -> int:
        return resubmissions_spent(self.resubmissions_used, self.resubmissions_left, rules)

    def resubmissions_remaining(self, rules: SchoolRules) -> int:
        return max(0, rules.free_resubmissions - self.resubmissions_spent(rules))

    @property
    def order_book(self) -> OrderBook:
        """Every order issued for the application, typed by the money decisions (domain/orders.py)."""
        return OrderBook.from_document(
            {
                "orders": (self.model_extra or {}).get("orders"),
                "order": self.order.doc() if self.order else None,
            }
        )

    @property
    def scan_in_flight(self) -> bool:
        return self.code is not None and self.code.status is ScanStatus.PENDING

    # --- writing -------------------------------------------------------------------------------

    def change(self, *, events: list[Envelope] | tuple[Envelope, ...] = (), **updates: Any) -> Change:
        """A Change setting the named top-level fields to the given values (typed parts are stored as
        documents; None is stored as null)."""
        return Change(set={name: _stored(value) for name, value in updates.items()}, events=list(events))


def resubmissions_spent(used: int | None, left: int | None, rules: SchoolRules) -> int:
    """Free resubmissions spent (seed 12); documents written before the counter kept only what was left."""
    if used is not None:
        return int(used)
    if left is not None:
        return max(0, rules.free_resubmissions - int(left))
    return 0


def resubmissions_remaining(document: dict[str, Any], rules: SchoolRules) -> int:
    """What is left under the school's rules, from a stored document (the status page, the console)."""
    spent = resubmissions_spent(document.get("resubmissions_used"), document.get("resubmissions_left"), rules)
    return max(0, rules.free_resubmissions - spent)


def _stored(value: Any) -> Any:
    if isinstance(value, Part):
        return value.doc()
    if isinstance(value, Quota):
        return value.to_doc()
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_stored(v) for v in value]
    return _plain(value)


def _plain(value: Any) -> Any:
    """Enums as their plain values (the driver stores str subclasses, but readers compare values)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

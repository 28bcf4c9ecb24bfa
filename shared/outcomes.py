"""The workers' at-least-once step: one stored outcome per input, decided once, republished on redelivery.

Every worker does the same: look for the outcome stored under the input's key (scan id, photo id); if
there is none, decide, insert it, and if a concurrent delivery inserted first, read theirs back; then
publish the result event built from whatever is stored. The result event's id is fixed when the outcome
is stored (derived from the input event's id), so a redelivery of the same input republishes the same
id and consumers deduplicate it; a *new* input event for an input already decided (a re-confirmation,
a repeated request) gets the stored outcome under an id derived from its own event, so a consumer
waiting for it is never left waiting behind a duplicate it skipped.

Such a handler is idempotent by construction, so the bus takes no claim for it
(`Subscription.on(..., claim=False)`, docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.db import Document
from shared.events import Envelope, EventData, derived_id, make_event, utcnow
from shared.logging import get_logger

log = get_logger(__name__)

RESULT_EVENT_FIELD = "result_event_id"


@dataclass(frozen=True)
class Outcome:
    """The stored outcome of one input and the id its result event carries for this delivery."""

    document: Document
    # True when this delivery decided and stored it; False when found (an earlier or concurrent delivery).
    decided_here: bool
    event_id: str

    def result(self, data: EventData, envelope: Envelope) -> Envelope:
        """The result event for `data`, correlated with the input `envelope`."""
        return make_event(
            data, application_id=envelope.application_id, event_id=self.event_id, trace=envelope.trace
        )


class StoredOutcomes:
    """One collection of outcomes owned by a worker (`codes`, `photos`, `matches`)."""

    def __init__(
        self, collection: AsyncCollection[Document], *, producer: str, input_event_field: str
    ) -> None:
        self._collection = collection
        self._producer = producer
        # Where the input event's id is stored (`scan_event_id`, ...): tells a redelivery from a new event.
        self._input_field = input_event_field

    async def decide_once(
        self,
        key: str,
        envelope: Envelope,
        decide: Callable[[], Awaitable[Document]],
        *,
        discard: Callable[[Document], Awaitable[None]] | None = None,
    ) -> Outcome:
        """The outcome stored under `key`, deciding and storing it first if there is none.

        `decide` returns the outcome's fields; `_id`, the input event id, `application_id`,
        `decided_at` and the result event id are added here. `discard` undoes what a decision made
        outside the document (a blob written) when a concurrent delivery stored its outcome first.
        """
        stored = await self._collection.find_one({"_id": key})
        if stored is not None:
            log.info("outcome already stored, republishing", key=key)
            return Outcome(stored, False, self._event_id(stored, envelope))
        fields = await decide()
        document: Document = {
            "application_id": envelope.application_id,
            "decided_at": utcnow(),
            **fields,
            "_id": key,
            self._input_field: envelope.id,
            # Fixed now, so a republish after a crash carries the same id.
            RESULT_EVENT_FIELD: derived_id(self._producer, envelope.id),
        }
        try:
            await self._collection.insert_one(document)
        except DuplicateKeyError:
            # A concurrent delivery of the same input stored its outcome first: publish that one.
            if discard is not None:
                await discard(document)
            found = await self._collection.find_one({"_id": key})
            if found is None:  # deleted in between (an erasure): nothing to republish but ours
                raise
            log.info("outcome stored by a concurrent delivery, republishing theirs", key=key)
            return Outcome(found, False, self._event_id(found, envelope))
        return Outcome(document, True, document[RESULT_EVENT_FIELD])

    def _event_id(self, stored: Document, envelope: Envelope) -> str:
        if stored.get(self._input_field) == envelope.id and stored.get(RESULT_EVENT_FIELD):
            return str(stored[RESULT_EVENT_FIELD])
        return derived_id(self._producer, envelope.id)

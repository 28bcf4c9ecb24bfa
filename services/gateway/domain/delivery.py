"""After approval: an application claimed into a per-school delivery batch, then stamped printed and
mailed (the batch mechanics and why they are safe are in `services/gateway/console/batches.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.gateway.applications import State
from services.gateway.domain.application import Application, Delivery
from services.gateway.domain.change import Change
from services.gateway.domain.errors import DomainError

Stage = Literal["printed", "mailed"]


class NotClaimable(DomainError):
    """The application changed under us: already in a batch, or no longer approved."""

    def __init__(self, application_id: str) -> None:
        super().__init__("not_claimable", application_id=application_id)


def claim_for_batch(application: Application, batch_id: str, exported_at: datetime) -> Change:
    if application.delivery is not None or application.state is not State.APPROVED:
        raise NotClaimable(application.id)
    return application.change(
        delivery=Delivery(batch_id=batch_id, exported_at=exported_at, printed_at=None, mailed_at=None)
    )


def stamp(application: Application, batch_id: str, stage: Stage, at: datetime) -> Change:
    """Printed or mailed, once: a repeat (or an application no longer in the batch) is refused."""
    delivery = application.delivery
    key = f"{stage}_at"
    if delivery is None or delivery.batch_id != batch_id or getattr(delivery, key) is not None:
        raise NotClaimable(application.id)
    return application.change(delivery=delivery.model_copy(update={key: at}))

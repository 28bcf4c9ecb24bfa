"""The dead-letter browser: what each consumer parked in `<consumer>.dead` (decoded payload, reason,
attempts, history), and per message a redrive (same event id, back to the events exchange under its
type) or a discard. Browsing takes messages with basic.get and requeues them: nothing is lost by looking.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import DeliveryError
from aiohttp import web
from pydantic import BaseModel

from services.gateway.console.auth import CONSOLE, roles
from services.gateway.console.cases import PREFIX
from services.gateway.console.operators import Operator, Role
from services.gateway.http.errors import ApiError, json_response
from services.gateway.http.query import query_number
from services.gateway.http.registry import Api
from shared.bus import copy_message
from shared.topology import CONSUMERS, dead_queue

api = Api()
MAX_BROWSE = 200
# Headers the parking added: a redriven message starts its attempts afresh.
PARKING_HEADERS = ("x-attempt", "x-dead-reason", "x-dead-at", "x-consumer")


class DeadLetter(BaseModel):
    event_id: str | None
    type: str | None
    application_id: str | None
    occurred_at: str | None
    reason: str | None
    attempts: int
    dead_at: str | None
    history: list[dict[str, Any]]
    payload: Any


class DeadQueue(BaseModel):
    consumer: str
    queue: str
    messages: int


class DeadQueues(BaseModel):
    queues: list[DeadQueue]


class DeadLetterList(BaseModel):
    consumer: str
    messages: list[DeadLetter]


class DeadLetterAction(BaseModel):
    consumer: str
    event_id: str
    action: str
    routing_key: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def decode(message: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    try:
        envelope: Any = json.loads(message.body)
    except ValueError:
        envelope = None
    envelope_fields = envelope if isinstance(envelope, dict) else {}
    try:
        history = json.loads(_text(headers.get("x-history")) or "[]")
    except ValueError:
        history = []
    try:
        attempts = int(_text(headers.get("x-attempt")) or 0)
    except (TypeError, ValueError):
        attempts = 0
    return DeadLetter(
        event_id=message.message_id or envelope_fields.get("id"),
        type=envelope_fields.get("type") or message.type,
        application_id=envelope_fields.get("application_id") or message.correlation_id,
        occurred_at=_text(envelope_fields.get("occurred_at")),
        reason=_text(headers.get("x-dead-reason")),
        attempts=attempts,
        dead_at=_text(headers.get("x-dead-at")),
        history=[h for h in history if isinstance(h, dict)] if isinstance(history, list) else [],
        # A malformed message is parked too: show its text, never interpret it.
        payload=envelope_fields.get("data")
        if envelope_fields
        else message.body[:4096].decode(errors="replace"),
    )


def _consumer(request: web.Request) -> str:
    consumer = request.match_info["consumer"]
    if consumer not in CONSUMERS:
        raise ApiError(404, "unknown_consumer")
    return consumer


@asynccontextmanager
async def _channel(request: web.Request) -> AsyncIterator[AbstractChannel]:
    settings = request.app[CONSOLE].settings
    try:
        connection = await aio_pika.connect(settings.amqp_url, timeout=settings.bus_publish_timeout_s)
    except Exception as exc:
        raise ApiError(503, "service_unavailable") from exc
    try:
        yield await connection.channel(publisher_confirms=True, on_return_raises=True)
    finally:
        await connection.close()


async def _taken(queue: AbstractQueue, limit: int) -> list[AbstractIncomingMessage]:
    """Up to `limit` messages held unacknowledged (so each is seen once); the caller settles every one."""
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await queue.get(no_ack=False, fail=False)
        if message is None:
            break
        taken.append(message)
    return taken


@api.route(
    "GET",
    f"{PREFIX}/deadletters",
    summary="Dead queues and their depth (admins)",
    response=DeadQueues,
    auth=roles(Role.ADMIN),
)
async def list_dead_queues(request: web.Request) -> web.Response:
    queues: list[DeadQueue] = []
    async with _channel(request) as channel:
        for consumer in CONSUMERS:
            queue = await channel.declare_queue(dead_queue(consumer), passive=True)
            count = queue.declaration_result.message_count or 0
            queues.append(DeadQueue(consumer=consumer, queue=dead_queue(consumer), messages=count))
    return json_response(DeadQueues(queues=queues).model_dump())


BROWSE_QUERY: dict[str, str | dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_BROWSE}
}


@api.route(
    "GET",
    f"{PREFIX}/deadletters/{{consumer}}",
    summary="The messages parked for a consumer, oldest first (admins); they stay parked",
    response=DeadLetterList,
    query=BROWSE_QUERY,
    errors=("forbidden", "unknown_consumer"),
    auth=roles(Role.ADMIN),
)
async def browse_dead_letters(request: web.Request, *, who: Operator) -> web.Response:
    consumer = _consumer(request)
    limit = int(query_number(request, "limit", BROWSE_QUERY, 50))  # 1-MAX_BROWSE: checked by the registry
    async with _channel(request) as channel:
        queue = await channel.get_queue(dead_queue(consumer), ensure=False)
        taken = await _taken(queue, limit)
        letters = [decode(m) for m in taken]
        for message in taken:
            await message.nack(requeue=True)
    await request.app[CONSOLE].audit.record(
        request, who, "deadletter.browse", consumer=consumer, count=len(letters)
    )
    return json_response(DeadLetterList(consumer=consumer, messages=letters).model_dump(mode="json"))


async def _act(request: web.Request, who: Operator, action: str) -> web.Response:
    consumer = _consumer(request)
    event_id = request.match_info["event_id"]
    routing_key: str | None = None
    letter: DeadLetter | None = None
    unroutable = False
    async with _channel(request) as channel:
        queue = await channel.get_queue(dead_queue(consumer), ensure=False)
        taken = await _taken(queue, MAX_BROWSE * 5)
        try:
            target = next((m for m in taken if decode(m).event_id == event_id), None)
            if target is None:
                raise ApiError(404, "dead_letter_not_found")
            letter = decode(target)
            if action == "redrive":
                routing_key = letter.type
                if not routing_key:
                    raise ApiError(404, "dead_letter_not_found", detail="no event type to route by")
                headers = {k: v for k, v in (target.headers or {}).items() if k not in PARKING_HEADERS}
                exchange = await channel.get_exchange(
                    request.app[CONSOLE].settings.bus_exchange, ensure=False
                )
                try:
                    await exchange.publish(
                        copy_message(target, headers, {"x-redriven-by": who.operator_id}),
                        routing_key=routing_key,
                        mandatory=True,
                    )
                except DeliveryError:
                    # Returned by the broker: no queue is bound to that type any more. It stays parked.
                    unroutable = True
            if not unroutable:
                # Published with a confirm first, then removed: a failure in between duplicates, never loses.
                await target.ack()
                taken.remove(target)
        finally:
            for message in taken:
                await message.nack(requeue=True)
    await request.app[CONSOLE].audit.record(
        request,
        who,
        f"deadletter.{action}",
        consumer=consumer,
        event_id=event_id,
        event_type=letter.type,
        application_id=letter.application_id,
        dead_reason=letter.reason,
        outcome="failed" if unroutable else "ok",
    )
    if unroutable:
        raise ApiError(409, "dead_letter_unroutable")
    reply = DeadLetterAction(consumer=consumer, event_id=event_id, action=action, routing_key=routing_key)
    return json_response(reply.model_dump())


@api.route(
    "POST",
    f"{PREFIX}/deadletters/{{consumer}}/{{event_id}}/redrive",
    summary="Publish a dead message again (same event id) to the events exchange under its type (admins)",
    response=DeadLetterAction,
    errors=(
        "forbidden",
        "csrf_failed",
        "unknown_consumer",
        "dead_letter_not_found",
        "dead_letter_unroutable",
    ),
    auth=roles(Role.ADMIN),
)
async def redrive_dead_letter(request: web.Request, *, who: Operator) -> web.Response:
    return await _act(request, who, "redrive")


@api.route(
    "POST",
    f"{PREFIX}/deadletters/{{consumer}}/{{event_id}}/discard",
    summary="Drop a dead message for good (admins)",
    response=DeadLetterAction,
    errors=("forbidden", "csrf_failed", "unknown_consumer", "dead_letter_not_found"),
    auth=roles(Role.ADMIN),
)
async def discard_dead_letter(request: web.Request, *, who: Operator) -> web.Response:
    return await _act(request, who, "discard")

"""Which HTTP status answers each error code: one table for the error middleware (ApiError and the
domain's DomainError) and for the OpenAPI documents.

A code missing here is a 400. Add a row with every new code that is not (the domain's refusals included:
`services/gateway/domain/errors.py` raises them without knowing about HTTP).
"""

from __future__ import annotations

STATUS_OF: dict[str, int] = {
    "policy_outdated": 409,
    "unauthenticated": 401,
    "console_unauthenticated": 401,
    "invalid_credentials": 401,
    "csrf_failed": 403,
    "review_lease_held": 409,
    "no_paid_order": 409,
    "photo_not_rejected": 409,
    "photo_not_placeable": 409,
    "nothing_to_deliver": 409,
    "batch_open": 409,
    "delivery_photo_invalid": 409,
    "delivery_not_printed": 409,
    "photo_purged": 410,
    "application_in_flight": 409,
    "refund_failed": 502,
    "import_too_large": 413,
    "unknown_consumer": 404,
    "dead_letter_not_found": 404,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "illegal_transition": 409,
    "application_locked": 409,
    "idempotency_conflict": 409,
    "idempotency_key_reused": 409,
    "busy": 409,
    "order_failed": 502,
    "nothing_to_refund": 409,
    "refund_amount_invalid": 409,
    "anomaly_not_refundable": 409,
    "account_bound_to_other_student": 409,
    "student_bound_elsewhere": 409,
    "no_application": 409,
    # Domain refusals (services/gateway/domain): the application's state or history does not allow it.
    "photo_not_ready": 409,
    "admission_photo_missing": 409,
    "resubmissions_exhausted": 409,
    "scan_in_flight": 409,
    "no_owner": 409,
    "not_claimable": 409,
    "quota_exhausted": 429,
    "rate_limited": 429,
    "payload_too_large": 413,
    "image_too_large": 413,
    "unsupported_media_type": 415,
    "not_an_image": 415,
    "wechat_unavailable": 502,
    "service_unavailable": 503,
    "internal_error": 500,
}

#: The code of an error aiohttp raises itself (no route, wrong method, body too large, ...).
HTTP_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "service_unavailable",
}

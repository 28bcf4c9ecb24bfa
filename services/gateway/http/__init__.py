"""The gateway's HTTP plumbing, shared by the student API (`api/`) and the console (`console/`): the
route registry and its OpenAPI document, body parsing, errors and their statuses, uploads, rate limits.
Nothing here knows a business rule.
"""

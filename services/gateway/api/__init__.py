"""The student API under /api/v1: one module per step of the journey, registered with its OpenAPI entry."""

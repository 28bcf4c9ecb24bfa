"""Matching worker: face comparison with the admission photo (built in its own issue; not runnable yet)."""

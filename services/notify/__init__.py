"""Notify worker: WeChat subscribe messages (built in its own issue; not runnable yet)."""

"""Notify worker: WeChat subscribe messages about payment, face comparison and review, at most once per event."""

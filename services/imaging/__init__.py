"""Imaging worker: quality check and CHSI standardisation (built in its own issue; not runnable yet)."""

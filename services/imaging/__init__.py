"""Imaging worker: quality check of student photos and standardisation to the CHSI photo standard."""

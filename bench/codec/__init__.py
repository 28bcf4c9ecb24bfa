"""Codec benchmark: seeded, degraded CHSI-like QR uploads and four decoding contenders."""

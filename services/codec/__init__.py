"""Codec service: decodes CHSI 图像采集码 QR images and decrypts their payload.

The QR text is opaque: :mod:`services.codec.decode` turns uploads into text,
:mod:`services.codec.cipher` turns text into bytes behind a replaceable interface,
and :mod:`services.codec.payload` turns bytes into a validated :class:`ChsiRecord`.
"""

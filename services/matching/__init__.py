"""Matching service: compares a student's confirmed photo with their admission photo (录取照片).

:mod:`services.matching.engines` finds, aligns and embeds faces (dlib or an insightface pack),
:mod:`services.matching.score` maps an engine's similarity onto the 0-100 scale whose pass mark is 80,
:mod:`services.matching.compare` runs one comparison, :mod:`services.matching.admission` checks an
admission photo at roster import, and :mod:`services.matching.handlers` consumes photo.confirmed.v1.
"""

"""The gateway's domain: the typed application aggregate, its statuses, the school's rules, and every
decision as a pure function (aggregate + input + rules + clock -> a change and its events, or a
DomainError). No I/O and no HTTP types live here; `services/gateway/http` maps DomainError codes to
HTTP statuses in one table.
"""

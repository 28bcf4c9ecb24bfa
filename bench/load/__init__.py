"""`make load`: the whole system under simulated students, with faults on request, and the audit."""

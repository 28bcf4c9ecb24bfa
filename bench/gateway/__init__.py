"""`make bench-gateway`: the student status endpoint under wrk, beside a bare aiohttp endpoint."""

"""`python -m services.matching`: run the matching worker until SIGTERM."""

import asyncio

from services.matching.worker import run

if __name__ == "__main__":
    asyncio.run(run())

"""`python -m services.notify`: run the notify worker until SIGTERM."""

import asyncio

from services.notify.worker import run

if __name__ == "__main__":
    asyncio.run(run())

"""`python -m services.codec`: run the codec worker until SIGTERM."""

import asyncio

from services.codec.worker import run

if __name__ == "__main__":
    asyncio.run(run())

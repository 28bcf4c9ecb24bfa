"""`python -m services.imaging`: run the imaging worker until SIGTERM."""

import asyncio

from services.imaging.worker import run

if __name__ == "__main__":
    asyncio.run(run())

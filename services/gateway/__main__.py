"""`python -m services.gateway`: run the gateway until SIGTERM."""

import asyncio

from services.gateway.app import run

if __name__ == "__main__":
    asyncio.run(run())

"""Fixtures of the integration tests."""

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from pymongo import AsyncMongoClient

from c2f_cli.stack import Stack


@pytest_asyncio.fixture(loop_scope="session")
async def client(infra: Stack) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A client of the embedded database the integration tests share."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.config.scratch_mongo_uri)
    yield client
    await client.close()

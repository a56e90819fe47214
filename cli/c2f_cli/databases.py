"""The services' databases of a stack, by name, for tools, benchmarks and tests that read them:
each service keeps its database on a server of its own (`StackConfig.mongo_uri_of`), so a
database is opened on the server that holds it, one client per server."""

from types import TracebackType
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from c2f_cli.config import StackConfig

Document = dict[str, Any]


class Databases:
    def __init__(self, config: StackConfig, **client_options: Any) -> None:
        """`client_options`: for every client (e.g. `tz_aware=True`)."""
        self._config = config
        self._options = client_options
        self._clients: dict[str, AsyncMongoClient[Document]] = {}

    def __getitem__(self, name: str) -> AsyncDatabase[Document]:
        return self.client_for(name)[name]

    def client_for(self, name: str) -> AsyncMongoClient[Document]:
        """The client of the server that holds the database `name`."""
        uri = self._config.mongo_uri_for_database(name)
        if uri not in self._clients:
            self._clients[uri] = AsyncMongoClient(uri, **self._options)
        return self._clients[uri]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> "Databases":
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.close()

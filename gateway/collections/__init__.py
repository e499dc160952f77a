"""Local vector search: named collections of embeddings on usearch, durable in SQLite."""

from gateway.collections.manager import CollectionManager, CollectionUnavailable
from gateway.collections.search import Hit
from gateway.collections.spec import DTYPES, CollectionSpec, check_name, check_spec
from gateway.collections.store import NewItem

__all__ = [
    "DTYPES",
    "CollectionManager",
    "CollectionSpec",
    "CollectionUnavailable",
    "Hit",
    "NewItem",
    "check_name",
    "check_spec",
]

"""Local vector search: named collections of embeddings on usearch, durable in SQLite."""

from gateway.errors import CollectionUnavailable
from gateway.vectorstore.filters import check_filter
from gateway.vectorstore.manager import CollectionManager
from gateway.vectorstore.search import Hit
from gateway.vectorstore.spec import DTYPES, CollectionSpec, check_name, check_spec
from gateway.vectorstore.store import NewItem

__all__ = [
    "DTYPES",
    "CollectionManager",
    "CollectionSpec",
    "CollectionUnavailable",
    "Hit",
    "NewItem",
    "check_filter",
    "check_name",
    "check_spec",
]

"""Durable storage: the SQLite store (blocks, transactions, state, consensus records)."""

from p2pmed.store.sqlite import SCHEMA_VERSION, Store, StoredTransaction, StoreError

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "StoredTransaction"]

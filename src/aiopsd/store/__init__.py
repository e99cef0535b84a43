"""Durable state: SQLAlchemy Core tables and the StateStore that reads and writes them."""

from aiopsd.store.state import AcceptResult, AlertDelivery, Claim, StateStore

__all__ = ["AcceptResult", "AlertDelivery", "Claim", "StateStore"]

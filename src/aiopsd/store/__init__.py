"""Durable state: SQLAlchemy Core tables and the StateStore that reads and writes them."""

from aiopsd.store.state import AcceptResult, Claim, IncomingAlert, StateStore

__all__ = ["AcceptResult", "Claim", "IncomingAlert", "StateStore"]

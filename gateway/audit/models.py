from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Float, Index, Integer, String
from sqlmodel import Field, SQLModel

from gateway.db import BIG_ID, UTCDateTime


class AuditEntry(SQLModel, table=True):
    """One append-only line: a mutating request, a forwarded batch, a handled webhook."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_action_at", "action", "at"),)

    id: int | None = Field(default=None, sa_column=Column(BIG_ID, primary_key=True))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(sa_column=Column(String(100), nullable=False))
    action: str = Field(sa_column=Column(String(100), nullable=False))
    target: str | None = Field(default=None, sa_column=Column(String(255), index=True))
    target_ids: list[str] | None = Field(default=None, sa_column=Column(JSON))
    upstream: str | None = Field(default=None, sa_column=Column(String(20)))
    outcome: str = Field(sa_column=Column(String(30), nullable=False))
    status: int | None = Field(default=None, sa_column=Column(Integer))
    latency_ms: float | None = Field(default=None, sa_column=Column(Float))
    request_id: str | None = Field(default=None, sa_column=Column(String(64)))
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))

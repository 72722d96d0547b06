from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from gateway.db import UTCDateTime


class ApiKey(SQLModel, table=True):
    """A gateway API key; only its SHA-256 hash is stored."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(100), unique=True, nullable=False))
    prefix: str = Field(sa_column=Column(String(32), unique=True, nullable=False))
    key_hash: str = Field(sa_column=Column(String(64), nullable=False))
    scopes: str = Field(sa_column=Column(String(200), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer, String
from sqlmodel import Field, SQLModel

from gateway.db import UTCDateTime


class User(SQLModel, table=True):
    """A person who signs in to the finance pages; only an Argon2id hash of the password."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    display_name: str = Field(sa_column=Column(String(200), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    password_hash: str | None = Field(default=None, sa_column=Column(String(200)))
    oidc_subject: str | None = Field(default=None, sa_column=Column(String(255), unique=True))
    session_version: int = Field(
        default=1, sa_column=Column(Integer, nullable=False, server_default="1")
    )
    failed_sign_ins: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default="0")
    )
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_sign_in_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))

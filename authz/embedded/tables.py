"""SQL tables of the embedded authorization engine (stores, models, tuples, changelog)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

authz_metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

fga_stores = Table(
    "fga_stores",
    authz_metadata,
    Column("id", String(26), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

fga_models = Table(
    "fga_models",
    authz_metadata,
    Column("id", String(26), primary_key=True),
    Column("store_id", String(26), nullable=False, index=True),
    Column("model_json", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
)

fga_tuples = Table(
    "fga_tuples",
    authz_metadata,
    Column("store_id", String(26), primary_key=True),
    Column("object", String(512), primary_key=True),
    Column("relation", String(128), primary_key=True),
    Column("user", String(512), primary_key=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Index("ix_fga_tuples_store_user", "store_id", "user"),
)

# Every write and delete appends here; replicas follow the changelog to keep their
# in-memory index current (monotonic id = position).
fga_changes = Table(
    "fga_changes",
    authz_metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("store_id", String(26), nullable=False),
    Column("op", String(8), nullable=False),
    Column("object", String(512), nullable=False),
    Column("relation", String(128), nullable=False),
    Column("user", String(512), nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
    Index("ix_fga_changes_store_id_id", "store_id", "id"),
)

"""Tables of approvals. Every state lives here (nothing in memory), so a restart or another
replica resumes where one stopped.

An approval's ``status`` only ever changes through a conditional ``UPDATE ... WHERE status
= <expected>`` (``bot.approvals.store``): of two replicas, clicks or polls racing for one
transition exactly one wins. ``version`` grows with every change; ``dirty`` says the Slack
messages do not show the current version yet (a render pass updates them and clears it
only if no change came in between).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base


class ApprovalStatus(enum.StrEnum):
    """Where an approval is. Final: executed, failed, denied, expired, cancelled."""

    PENDING = "pending"  # waiting for an approver to press Approve or Deny
    CONFIRMING = "confirming"  # an approver pressed Approve: CIBA runs on their device
    EXECUTING = "executing"  # granted: the action is being run (claimed, with a lease)
    EXECUTED = "executed"
    FAILED = "failed"  # granted, but the action could not be run (reason recorded)
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self not in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {ApprovalStatus.PENDING, ApprovalStatus.CONFIRMING, ApprovalStatus.EXECUTING}
)
# What a deadline ends: an approval being executed finishes whatever the clock says.
EXPIRABLE = (ApprovalStatus.PENDING.value, ApprovalStatus.CONFIRMING.value)


class Reminder(enum.IntEnum):
    NOT_YET = 0
    DUE = 1  # the sweep found it half-way to expiry; the render pass sends it
    SENT = 2


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_status_expires_at", "status", "expires_at"),
        Index("ix_approvals_status_next_poll_at", "status", "next_poll_at"),
        Index("ix_approvals_status_remind_at", "status", "remind_at"),
        Index("ix_approvals_dirty", "dirty"),
        Index("ix_approvals_requester", "team_id", "requester_slack_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    requester_slack_id: Mapped[str] = mapped_column(String(32))
    requester_sub: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    arguments: Mapped[str] = mapped_column(Text)  # JSON object, normalised by the service
    target: Mapped[str] = mapped_column(String(300))  # what it acts on, for people
    project_ids: Mapped[str] = mapped_column(Text)  # JSON list
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it ended so
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    remind_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminder: Mapped[int] = mapped_column(SmallInteger, default=0)
    # Set while the approval is open; cleared when it ends, so asking again later makes a
    # new approval while a repeated request in the meantime finds this one.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    requester_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    requester_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # CIBA, for the approver who pressed Approve. auth_req_id is never shown to anyone.
    approver_slack_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    approver_sub: Mapped[str | None] = mapped_column(String(255), nullable=True)
    auth_req_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    binding_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    poll_interval: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # CONFIRMING: when to poll next; EXECUTING: until when the executor's claim holds.
    next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decided_by_slack_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    executed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dirty: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    rendered_version: Mapped[int] = mapped_column(Integer, default=0)
    render_lease_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class ApprovalApprover(Base):
    """Who may approve an approval, and the DM each of them got (updated in place)."""

    __tablename__ = "approval_approvers"
    __table_args__ = (Index("ix_approval_approvers_slack_user_id", "slack_user_id"),)

    approval_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("approvals.id", ondelete="CASCADE"), primary_key=True
    )
    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sub: Mapped[str] = mapped_column(String(255))
    dm_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    dm_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

"""Answers given and the 👍/👎 feedback on them.

Each answer that cited documents is recorded (``answers``): the question, the asker, the
documents it cited (only ever ones its readers may view: they come from the answer) and
whether only the asker read it. The buttons under it carry the answer's id; a click stores
the vote of the person who clicked (``answer_feedback``, one vote per person and answer, a
second click changes it). A private answer only takes its asker's vote, and a button never
says more than "this answer": whatever its value, a click reads nothing back.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from authz.embedded.ulid import new_ulid
from bot.identity.model import Identity
from bot.storage.db import Database
from bot.storage.models import Base

_ANSWER_ID: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


class Visibility(enum.StrEnum):
    PRIVATE = "private"  # only the asker read it
    CHANNEL = "channel"  # everyone in the channel did


class Vote(enum.StrEnum):
    UP = "up"
    DOWN = "down"


class VoteOutcome(enum.StrEnum):
    RECORDED = "recorded"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    UNKNOWN = "unknown"  # no such answer (or of another workspace)
    NOT_YOURS = "not_yours"  # a private answer, clicked by someone else


class Answer(Base):
    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_asker", "team_id", "asker_slack_user_id"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    asker_slack_user_id: Mapped[str] = mapped_column(String(32))
    asker_sub: Mapped[str] = mapped_column(String(255))
    question: Mapped[str] = mapped_column(Text)
    document_ids: Mapped[str] = mapped_column(Text)  # JSON list, in citation order
    visibility: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AnswerFeedback(Base):
    __tablename__ = "answer_feedback"

    answer_id: Mapped[str] = mapped_column(
        String(26), ForeignKey("answers.id", ondelete="CASCADE"), primary_key=True
    )
    voter_slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    voter_sub: Mapped[str] = mapped_column(String(255))
    vote: Mapped[str] = mapped_column(String(4))
    voted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class RecordedAnswer:
    id: str
    team_id: str
    channel_id: str
    asker_slack_user_id: str
    question: str
    document_ids: list[str]
    visibility: Visibility


class AnswerRecords:
    """Stores answers and votes (see the module docstring)."""

    def __init__(self, *, db: Database) -> None:
        self._db = db

    async def record(
        self,
        *,
        team_id: str,
        channel_id: str,
        asker: Identity,
        question: str,
        document_ids: Sequence[str],
        visibility: Visibility,
    ) -> str:
        """Stores an answer; returns its id (what its feedback buttons carry)."""
        answer_id = new_ulid()
        async with self._db.session() as session:
            session.add(
                Answer(
                    id=answer_id,
                    team_id=team_id,
                    channel_id=channel_id,
                    asker_slack_user_id=asker.slack_user_id,
                    asker_sub=asker.sub,
                    question=question,
                    document_ids=json.dumps(list(document_ids)),
                    visibility=visibility.value,
                    created_at=datetime.now(UTC),
                )
            )
        return answer_id

    async def get(self, answer_id: str) -> RecordedAnswer | None:
        if not _ANSWER_ID.fullmatch(answer_id):
            return None
        async with self._db.session() as session:
            row = await session.get(Answer, answer_id)
        if row is None:
            return None
        return RecordedAnswer(
            id=row.id,
            team_id=row.team_id,
            channel_id=row.channel_id,
            asker_slack_user_id=row.asker_slack_user_id,
            question=row.question,
            document_ids=list(json.loads(row.document_ids)),
            visibility=Visibility(row.visibility),
        )

    async def vote(self, *, answer_id: str, voter: Identity, vote: Vote) -> VoteOutcome:
        """Stores ``voter``'s vote on the answer (of the voter's workspace)."""
        answer = await self.get(answer_id)
        if answer is None or answer.team_id != voter.team_id:
            return VoteOutcome.UNKNOWN
        if (
            answer.visibility is Visibility.PRIVATE
            and answer.asker_slack_user_id != voter.slack_user_id
        ):
            return VoteOutcome.NOT_YOURS
        try:
            return await self._store_vote(answer_id, voter, vote)
        except IntegrityError:
            # Two first clicks at once: the other one inserted the row; this one updates it.
            return await self._store_vote(answer_id, voter, vote)

    async def _store_vote(self, answer_id: str, voter: Identity, vote: Vote) -> VoteOutcome:
        now = datetime.now(UTC)
        async with self._db.session() as session:
            existing = await session.scalar(
                select(AnswerFeedback)
                .where(
                    AnswerFeedback.answer_id == answer_id,
                    AnswerFeedback.voter_slack_user_id == voter.slack_user_id,
                )
                .with_for_update()
            )
            if existing is None:
                session.add(
                    AnswerFeedback(
                        answer_id=answer_id,
                        voter_slack_user_id=voter.slack_user_id,
                        voter_sub=voter.sub,
                        vote=vote.value,
                        voted_at=now,
                    )
                )
                outcome = VoteOutcome.RECORDED
            elif existing.vote == vote.value:
                outcome = VoteOutcome.UNCHANGED
            else:
                existing.vote = vote.value
                existing.voter_sub = voter.sub
                existing.voted_at = now
                outcome = VoteOutcome.CHANGED
        return outcome

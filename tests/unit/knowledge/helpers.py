"""Helpers of the knowledge tests: projects, files of every kind, a tiny PDF."""

from __future__ import annotations

from datetime import UTC, datetime

from authz.embedded.ulid import new_ulid
from bot.projects.models import Project
from bot.storage.db import Database

TEAM = "T0SANDBOX"


async def create_project(db: Database, name: str, team_id: str = TEAM) -> str:
    project_id = new_ulid()
    async with db.session() as session:
        session.add(
            Project(
                id=project_id,
                team_id=team_id,
                name=name,
                name_key=name.casefold(),
                created_by="auth0|admin",
                created_at=datetime.now(UTC),
            )
        )
    return project_id


def minimal_pdf(lines: list[str], title: str = "Launch Spec") -> bytes:
    """A valid one-page PDF showing ``lines`` in Helvetica (written by hand: offsets and
    cross-reference table included)."""
    content = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(f"({line}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({title}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return out

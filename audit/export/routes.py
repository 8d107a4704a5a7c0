from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from audit.deps import SessionDep, UserDep
from audit.export.service import DEFAULT_REPORTS, ExportRequest, export_bundle

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    provider_ids: list[str] = Field(default_factory=list, max_length=200)
    reports: list[str] = Field(default_factory=lambda: list(DEFAULT_REPORTS), max_length=20)


@router.post("", response_class=FileResponse, responses={200: {"content": {"application/zip": {}}}})
def create_export(session: SessionDep, user: UserDep, data: ExportIn) -> FileResponse:
    """A zip bundle (manifest, events, signed checkpoint, public key, proofs, reports, verify.py)."""
    handle, name = tempfile.mkstemp(prefix="audit-export-", suffix=".zip")
    os.close(handle)
    out = Path(name)
    try:
        req = ExportRequest(data.date_from, data.date_to, tuple(data.provider_ids), tuple(data.reports))
        result = export_bundle(session, user=user, req=req, out=out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return FileResponse(
        out,
        media_type="application/zip",
        filename=f"audit-export-{result.sha256[:12]}.zip",
        headers={"X-Bundle-SHA256": result.sha256},
        background=BackgroundTask(out.unlink, missing_ok=True),
    )

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import ConfigDict, Field
from sqlmodel import Session
from starlette.background import BackgroundTask

from audit.deps import SessionDep, UserDep
from audit.export.service import DEFAULT_REPORTS, MAX_PREVIOUS, ExportRequest, export_bundle
from audit.inputs import RequestModel
from audit.openapi import error_responses
from audit.principal import CurrentUser

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


class ExportIn(RequestModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: date | None = Field(default=None, alias="from")
    date_to: date | None = Field(default=None, alias="to")
    provider_ids: list[Annotated[str, Field(max_length=36)]] = Field(default_factory=list, max_length=200)
    reports: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=lambda: list(DEFAULT_REPORTS), max_length=20
    )
    previous: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None,
        max_length=MAX_PREVIOUS,
        description="Tree sizes of signed checkpoints you hold: the bundle carries those notes and, "
        "when scoped, a consistency proof from each, for `verify.py --previous NOTE`. Default: the "
        "tree sizes of your last exports.",
    )


@router.post(
    "",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}}, **error_responses(409)},
)
def create_export(session: SessionDep, user: UserDep, data: ExportIn) -> FileResponse:
    """A zip bundle (manifest, events, signed checkpoint, public key, proofs, reports, verify.py)."""
    previous = tuple(data.previous) if data.previous is not None else None
    req = ExportRequest(data.date_from, data.date_to, tuple(data.provider_ids), tuple(data.reports), previous)
    return bundle_download(session, user, req)


def bundle_download(session: Session, user: CurrentUser, req: ExportRequest) -> FileResponse:
    """Write the bundle to a temporary file and send it, deleting the file once sent (or on failure);
    the API's export and the auditor's page both answer with this."""
    handle, name = tempfile.mkstemp(prefix="audit-export-", suffix=".zip")
    os.close(handle)
    out = Path(name)
    try:
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

"""`POST /api/v1/imports`: a bulk charge feed as the request body (CSV or NDJSON), streamed.

The body is spooled to a temporary file as it arrives (memory up to SPOOL_MEMORY, then disk), never
held whole; the import then reads it as a stream, exactly as `audit import` reads a file. The caller
is resolved from the bearer token in its own short transaction (no transaction stays open while the
body arrives), and must be allowed `import.run`: an integration account, a provider or a coder.
"""

from __future__ import annotations

from tempfile import SpooledTemporaryFile
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from audit.deps import BindDep, TokenDep
from audit.errors import InvalidInput, NotAuthenticated, UnsupportedMediaType
from audit.imports.feed import FeedError, Rejection
from audit.imports.service import Bind, run_import
from audit.middleware import MAX_BODY_KEY
from audit.openapi import error_responses
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.service import resolve_token

router = APIRouter(prefix="/api/v1", tags=["imports"])
MAX_FEED_BYTES = 2 * 1024**3
SPOOL_MEMORY = 1024 * 1024
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/octet-stream": None,  # told by its first line
}


class ImportCountsOut(BaseModel):
    rows: int
    created: int
    changed: int
    unchanged: int
    rejected: int
    encounters_created: int


class RejectionOut(BaseModel):
    line: int
    field: str
    reason: str


class ImportOut(BaseModel):
    import_id: str
    sha256: str
    format: str
    bytes: int
    counts: ImportCountsOut
    seq: int
    rejections: list[RejectionOut]
    rejections_truncated: bool


def _feed_body() -> dict[str, Any]:
    text = {"schema": {"type": "string", "format": "binary"}}
    return {
        MAX_BODY_KEY: MAX_FEED_BYTES,
        "requestBody": {
            "required": True,
            "content": {media: text for media in MEDIA_TYPES},
            "description": "One code line per row: CSV with a header row, or NDJSON (see `audit import`).",
        },
    }


@router.post(
    "/imports",
    response_model=ImportOut,
    openapi_extra=_feed_body(),
    responses=error_responses(401, 403, 413, 415, 422),
)
async def post_import(
    request: Request,
    bind: BindDep,
    token: TokenDep,
    max_rejections: Annotated[int, Query(ge=0, le=10_000)] = 1000,
) -> ImportOut:
    """Import a charge feed. Every row goes through the same rules as the code endpoints; refused
    rows are listed (line, field, reason; the first `max_rejections`) and the rest are imported. The
    same (external_id, line_ref) is never imported twice; a changed row becomes a change."""
    submitter = await run_in_threadpool(_caller, bind, token)
    fmt = _format(request.headers.get("content-type"))
    rejections: list[RejectionOut] = []
    with SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)

        def keep(rejection: Rejection) -> None:
            if len(rejections) < max_rejections:
                rejections.append(
                    RejectionOut(line=rejection.line_no, field=rejection.field, reason=rejection.reason)
                )

        try:
            result = await run_in_threadpool(
                run_import,
                bind,
                submitter=submitter,
                stream=spool,  # type: ignore[arg-type]
                fmt=fmt,
                on_rejection=keep,
            )
        except FeedError as exc:
            raise InvalidInput(exc.field, exc.message) from exc
    return ImportOut(
        **{k: v for k, v in result.as_dict().items() if k != "counts"},
        counts=ImportCountsOut(**result.as_dict()["counts"]),
        rejections=rejections,
        rejections_truncated=result.counts.rejected > len(rejections),
    )


def _caller(bind: Bind, token: str | None) -> CurrentUser:
    if not token:
        raise NotAuthenticated("sign in first: send Authorization: Bearer <token>")
    with unit_of_work(bind) as session:
        return CurrentUser.of(resolve_token(session, token))


def _format(content_type: str | None) -> str | None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"send the feed as {', '.join(MEDIA_TYPES)}, not {media[:60] or 'no Content-Type'!r}",
            field="Content-Type",
        )
    return MEDIA_TYPES[media]

"""The leaderboard's HTTP API (FastAPI). The OpenAPI spec is served at /openapi.json, the docs at /docs.

What leaves the server is aggregate only: a submission's public score (per domain when the operator turns that on),
its private score once the board is finalized, budgets and the leaderboard. No route returns a label, an item's
correctness or an item's part. A token sees its own campaign's submissions; the leaderboard shows every
campaign's best score, as a public leaderboard does.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which use local names.

import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from evotrain.leaderboard.board import MAX_ID_LENGTH, Board
from evotrain.leaderboard.scoring import score_submission
from evotrain.leaderboard.store import (
    BudgetSpent,
    BudgetUsage,
    CampaignRow,
    KeyReused,
    LeaderboardStore,
    SubmissionRow,
)

API = "/api/v1"
MAX_ANSWER_LENGTH = 65536
MAX_PREDICTIONS = 200_000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters
ItemId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
AnswerText = Annotated[str, StringConstraints(max_length=MAX_ANSWER_LENGTH)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
SubmissionId = Annotated[str, Path(pattern=r"^sub-[0-9a-f]{16}$", description="a submission id (sub-<16 hex>)")]


class ServerSettings(BaseModel):
    per_domain: bool = False  # return per-domain public scores (Kaggle does not)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


# ---- wire models -------------------------------------------------------------------------------------------------
class SubmissionRequest(BaseModel):
    """The predictions file the campaign's predict step writes, plus an optional candidate label."""

    model_config = ConfigDict(extra="forbid")

    predictions: Annotated[
        dict[ItemId, AnswerText],
        Field(max_length=MAX_PREDICTIONS),
        # pydantic would publish the key pattern as patternProperties, which leaves other keys unconstrained in the
        # spec; propertyNames says what the server really accepts.
        WithJsonSchema(
            {
                "type": "object",
                "description": "{item id: answer text}; ids not on the board are ignored, missing items are wrong",
                "maxProperties": MAX_PREDICTIONS,
                "propertyNames": {"minLength": 1, "maxLength": MAX_ID_LENGTH, "pattern": ID_PATTERN},
                "additionalProperties": {"type": "string", "maxLength": MAX_ANSWER_LENGTH},
            }
        ),
    ]
    candidate: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None


class SubmissionView(BaseModel):
    id: str
    campaign: str
    candidate: str | None
    created_at: float
    public_score: float | None
    n_public: int
    domains: dict[str, float] | None = Field(
        None, description="per-domain public scores; only when the operator serves with --per-domain"
    )
    private_score: float | None = Field(None, description="hidden (null) until the operator finalizes the board")
    n_private: int


class BudgetView(BaseModel):
    max_total: int | None
    max_per_period: int | None
    period_s: float
    used_total: int
    used_in_period: int
    allowed_now: bool
    next_allowed_at: float | None = Field(description="epoch seconds; null when the budget is spent for good")


class CampaignView(BaseModel):
    campaign: str
    board: str
    finalized: bool
    n_public: int
    n_private: int
    per_domain: bool
    budget: BudgetView


class LeaderboardEntry(BaseModel):
    rank: int
    campaign: str
    submissions: int
    best_public_score: float | None
    best_submission_id: str | None = Field(None, description="only for the caller's own campaign")
    private_score: float | None = Field(
        None, description="after finalization: the private score of the campaign's best public submission"
    )


class LeaderboardView(BaseModel):
    board: str
    finalized: bool
    ranked_by: str
    entries: list[LeaderboardEntry]


class Health(BaseModel):
    status: str
    board: str


class ErrorView(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorView}
    for code in (
        status.HTTP_400_BAD_REQUEST,
        status.HTTP_401_UNAUTHORIZED,
        status.HTTP_404_NOT_FOUND,
        status.HTTP_409_CONFLICT,
        status.HTTP_413_CONTENT_TOO_LARGE,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        status.HTTP_429_TOO_MANY_REQUESTS,
    )
}


# ---- the app -----------------------------------------------------------------------------------------------------
def create_app(board: Board, store: LeaderboardStore, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    n_public, n_private = len(board.part("public")), len(board.part("private"))
    app = FastAPI(
        title="evotrain leaderboard",
        version="1",
        description="Hidden-label scoring with a submission budget. See docs/leaderboard.md.",
        responses=ERRORS,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _install_error_handlers(app)
    bearer = HTTPBearer(auto_error=False, description="the campaign's token: `Authorization: Bearer <token>`")

    def campaign_of(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> CampaignRow:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise StarletteHTTPException(401, "missing token: send `Authorization: Bearer <token>`")
        campaign = store.campaign_for_token(credentials.credentials)
        if campaign is None:
            raise StarletteHTTPException(401, "unknown token")
        return campaign

    Campaign = Annotated[CampaignRow, Depends(campaign_of)]

    def view(row: SubmissionRow, finalized: bool) -> SubmissionView:
        return SubmissionView(
            id=row.id,
            campaign=row.campaign,
            candidate=row.candidate,
            created_at=row.created_at,
            public_score=row.public_score,
            n_public=row.n_public,
            domains=row.public_domains if settings.per_domain else None,
            private_score=row.private_score if finalized else None,
            n_private=row.n_private,
        )

    @app.get("/healthz", response_model=Health, tags=["server"])
    def healthz() -> Health:
        return Health(status="ok", board=board.name)

    @app.get(f"{API}/campaign", response_model=CampaignView, tags=["campaign"])
    def campaign_info(campaign: Campaign) -> CampaignView:
        """The caller's campaign: its budget and what it has used."""
        return CampaignView(
            campaign=campaign.name,
            board=board.name,
            finalized=store.finalized_at() is not None,
            n_public=n_public,
            n_private=n_private,
            per_domain=settings.per_domain,
            budget=_budget_view(store.usage(campaign)),
        )

    @app.post(
        f"{API}/submissions",
        response_model=SubmissionView,
        status_code=status.HTTP_201_CREATED,
        tags=["submissions"],
        responses={200: {"model": SubmissionView, "description": "a repeated Idempotency-Key: the earlier result"}},
    )
    def submit(
        body: SubmissionRequest,
        campaign: Campaign,
        response: Response,
        idempotency_key: Annotated[
            IdempotencyKey | None,
            Header(description="makes a retried POST safe: the same key returns the first result, spends nothing"),
        ] = None,
    ) -> SubmissionView:
        """Score predictions {id: answer}: the public score comes back; the private one stays hidden."""
        if store.finalized_at() is not None:
            raise StarletteHTTPException(409, "the board is finalized: it takes no more submissions")
        digest = hashlib.sha256(json.dumps(body.predictions, sort_keys=True).encode("utf-8", "surrogatepass"))
        scores = score_submission(board, body.predictions)
        try:
            row, created = store.record_submission(
                campaign,
                scores,
                candidate=body.candidate,
                predictions_sha256=digest.hexdigest(),
                idempotency_key=idempotency_key,
            )
        except BudgetSpent as exc:
            headers = {}
            if exc.next_allowed_at is not None:
                headers["Retry-After"] = str(max(1, math.ceil(exc.next_allowed_at - time.time())))
            raise StarletteHTTPException(429, exc.message, headers=headers) from None
        except KeyReused as exc:
            raise StarletteHTTPException(409, exc.message) from None
        if not created:
            response.status_code = status.HTTP_200_OK
        return view(row, finalized=False)

    @app.get(f"{API}/submissions", response_model=list[SubmissionView], tags=["submissions"])
    def list_submissions(campaign: Campaign) -> list[SubmissionView]:
        """The caller's campaign's submissions, oldest first."""
        finalized = store.finalized_at() is not None
        return [view(row, finalized) for row in store.submissions(campaign.name)]

    @app.get(f"{API}/submissions/{{submission_id}}", response_model=SubmissionView, tags=["submissions"])
    def get_submission(submission_id: SubmissionId, campaign: Campaign) -> SubmissionView:
        """One of the caller's submissions (another campaign's id is answered as not found)."""
        row = store.submission(campaign.name, submission_id)
        if row is None:
            raise StarletteHTTPException(404, "no such submission in this campaign")
        return view(row, store.finalized_at() is not None)

    @app.get(f"{API}/leaderboard", response_model=LeaderboardView, tags=["leaderboard"])
    def leaderboard(campaign: Campaign) -> LeaderboardView:
        """Every campaign's best public score; after finalization, ranked by the private score of that submission."""
        finalized = store.finalized_at() is not None
        entries = leaderboard_entries(store, finalized=finalized, viewer=campaign.name)
        return LeaderboardView(
            board=board.name,
            finalized=finalized,
            ranked_by="private_score" if finalized else "best_public_score",
            entries=entries,
        )

    return app


def leaderboard_entries(store: LeaderboardStore, *, finalized: bool, viewer: str | None) -> list[LeaderboardEntry]:
    """One entry per campaign: its best public submission (earliest wins a tie), ranked best first."""
    best: dict[str, SubmissionRow] = {}
    counts: dict[str, int] = {}
    for row in store.submissions():
        counts[row.campaign] = counts.get(row.campaign, 0) + 1
        current = best.get(row.campaign)
        if current is None or (row.public_score or 0.0) > (current.public_score or 0.0):
            best[row.campaign] = row
    names = [c.name for c in store.campaigns()]

    def key(name: str) -> tuple[float, float]:
        row = best.get(name)
        if row is None:
            return (math.inf, math.inf)
        value = row.private_score if finalized else row.public_score
        return (-(value if value is not None else -math.inf), row.created_at)

    entries = []
    for rank, name in enumerate(sorted(names, key=key), start=1):
        entry_row = best.get(name)
        entries.append(
            LeaderboardEntry(
                rank=rank,
                campaign=name,
                submissions=counts.get(name, 0),
                best_public_score=entry_row.public_score if entry_row else None,
                best_submission_id=entry_row.id if entry_row and viewer in (None, name) else None,
                private_score=entry_row.private_score if entry_row and finalized else None,
            )
        )
    return entries


def _budget_view(usage: BudgetUsage) -> BudgetView:
    return BudgetView(
        max_total=usage.max_total,
        max_per_period=usage.max_per_period,
        period_s=usage.period_s,
        used_total=usage.used_total,
        used_in_period=usage.used_in_period,
        allowed_now=usage.allowed_now,
        next_allowed_at=usage.next_allowed_at,
    )


# ---- errors and limits -------------------------------------------------------------------------------------------
def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The default handler echoes the input back; ours names the field and the problem only (no input, and
        # no dict key: an id the client sent never comes back).
        problems = []
        for error in exc.errors()[:20]:
            loc = ".".join(str(p) for p in error.get("loc", ())[:2])
            problems.append(f"{loc}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413, whether it declares a Content-Length or streams chunks.

    Hand-written (a few lines of ASGI) because neither Starlette nor uvicorn limits body size.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        payload = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})

"""Query and response models of the read endpoints the live page uses.

Every query is a pydantic model with bounds (``extra="forbid"``: a misspelt parameter is
a 422 naming it, not a silently ignored filter); every response is a model, so the
OpenAPI document shows what the page gets. An episode's row is built from its summary
hash (written by the API on register, the worker on start and the detector per batch)
in one place, :func:`episode_row`.
"""

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.trace import TraceStep

MAX_PAGE = 200
MAX_STEPS_PAGE = 1000
MAX_FLIPS = 500
Filter = Annotated[str, Field(min_length=1, max_length=128)]
# a stream entry id: "<ms>-<seq>" (the trace cursor)
STREAM_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"

# the summary fields a row needs (HMGET: the spec, which can be large, stays in Redis)
ROW_FIELDS = (
    "status",
    "source",
    "environment",
    "model",
    "mitigation",
    "accepted_step",
    "last_step",
    "runaway_index",
    "hazard",
    "flags",
    "flips",
    "registered_at",
)


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EpisodeQuery(_Query):
    """``GET /v1/episodes``: a page of episodes, newest first, optionally filtered."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=10_000_000, description="a next_offset from before")
    environment: Filter | None = None
    model: Filter | None = None
    mitigation: Filter | None = None
    source: Filter | None = None
    status: Literal["active", "finished"] | None = None
    flipped: bool | None = Field(default=None, description="at least one flip (any flag)")
    flagged: bool | None = Field(default=None, description="any flag raised so far")


class StepsQuery(_Query):
    """``GET /v1/episodes/{id}/steps``: the episode's trace, oldest first."""

    limit: int = Field(default=MAX_STEPS_PAGE, ge=1, le=MAX_STEPS_PAGE)
    after: str | None = Field(default=None, pattern=STREAM_ID, description="a next_after")

    @field_validator("after")
    @classmethod
    def _in_range(cls, value: str | None) -> str | None:
        if value is not None and any(int(p) >= 2**63 for p in value.split("-")):
            raise ValueError("not a stream entry id")
        return value


class FlipsQuery(_Query):
    """``GET /v1/flips``: the latest flips of all shards, newest first."""

    limit: int = Field(default=100, ge=1, le=MAX_FLIPS)
    flag: Filter | None = None


class EpisodeRow(BaseModel):
    episode_id: str
    status: str = "active"
    source: str = "worker"
    environment: str = "unknown"
    model: str = "unknown"
    mitigation: str = "none"
    accepted_step: int = 0
    last_step: int = 0
    runaway_index: float = 0.0
    hazard: float = 0.0
    flags: list[str] = Field(default_factory=list)
    flip_count: int = 0
    registered_at: float | None = None


class EpisodePage(BaseModel):
    items: list[EpisodeRow]
    next_offset: int | None = Field(description="pass as offset for more; null: the end")
    scanned: int = Field(description="index entries read for this page (filters skip some)")
    total: int = Field(description="episodes in the index, unfiltered")


class StepsPage(BaseModel):
    episode_id: str
    items: list[TraceStep]
    next_after: str | None = Field(description="pass as after for more; null: the end")


class FlipRow(BaseModel):
    episode_id: str
    step: int
    flag: str
    onset_step: int
    mode: str
    objective: str | None
    runaway_index: float
    ts: float
    environment: str = "unknown"
    model: str = "unknown"


class FlipList(BaseModel):
    items: list[FlipRow]


class Totals(BaseModel):
    """Running totals since the keys were created (the detectors' counts, all shards)."""

    episodes: int = Field(description="episodes in the index")
    episodes_flipped: int
    steps: int = Field(description="steps scored")
    flips: int = Field(description="flips of every flag: sum of runaway_flips_total")
    flips_by_flag: dict[str, int]
    recoveries: int = Field(description="recovery commands (resets) sent")


def _int(raw: str | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def stored_float(raw: str | None) -> float | None:
    """A stored number; None when missing, garbled or not finite (an older detector
    wrote 'nan'), so no answer ever carries a non-JSON number."""
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is None or math.isfinite(value) else None


def episode_row(episode_id: str, s: dict[str, str]) -> EpisodeRow:
    """A row from an episode's summary hash; missing or garbled fields take defaults."""
    return EpisodeRow(
        episode_id=episode_id,
        status=s.get("status") or "active",
        source=s.get("source") or "worker",
        environment=s.get("environment") or "unknown",
        model=s.get("model") or "unknown",
        mitigation=s.get("mitigation") or "none",
        accepted_step=_int(s.get("accepted_step")),
        last_step=_int(s.get("last_step")),
        runaway_index=stored_float(s.get("runaway_index")) or 0.0,
        hazard=stored_float(s.get("hazard")) or 0.0,
        flags=[f for f in (s.get("flags") or "").split(",") if f],
        flip_count=_int(s.get("flips")),
        registered_at=stored_float(s.get("registered_at")),
    )


def matches(row: EpisodeRow, q: EpisodeQuery) -> bool:
    """Whether ``row`` passes the query's filters."""
    for name in ("environment", "model", "mitigation", "source", "status"):
        wanted = getattr(q, name)
        if wanted is not None and getattr(row, name) != wanted:
            return False
    if q.flipped is not None and (row.flip_count > 0) != q.flipped:
        return False
    return q.flagged is None or bool(row.flags) == q.flagged


def _parameters(model: type[BaseModel]) -> list[dict[str, object]]:
    props = model.model_json_schema()["properties"]
    return [{"name": n, "in": "query", "schema": p} for n, p in props.items()]


def openapi_paths(ref: str) -> dict[str, dict[str, object]]:
    """The read endpoints' OpenAPI operations (``ref``: the schema reference template)."""

    def op(summary: str, query: type[BaseModel], body: type[BaseModel], path_id: bool) -> dict:
        params = _parameters(query)
        if path_id:
            params.insert(
                0,
                {
                    "name": "episode_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
            )
        ok = {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": ref.format(model=body.__name__)}}},
        }
        return {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": {
                "200": ok,
                "401": {"description": "no bearer token"},
                "422": {"description": "invalid query parameter"},
            },
        }

    totals = op("Running totals: flips by flag, recoveries, steps, episodes", _Query, Totals, False)
    return {
        "/v1/episodes": {
            "get": op("Episodes, newest first, filtered", EpisodeQuery, EpisodePage, False)
        },
        "/v1/episodes/{episode_id}/steps": {
            "get": op("The episode's scored steps", StepsQuery, StepsPage, True)
        },
        "/v1/flips": {"get": op("The latest flips, newest first", FlipsQuery, FlipList, False)},
        "/v1/totals": {"get": totals},
    }


RESPONSE_MODELS = (EpisodePage, StepsPage, FlipList, Totals)

"""Read endpoints of the live page: episode list, one episode's trace, flips, totals.

Everything comes from Redis, so the page is right on load, after a restart of the
service and whatever process ran the episode (worker or sidecar): the episode index and
summaries, the detector's per-episode trace, the shards' flips streams and the
detectors' running totals (:mod:`schemas.trace` says what a flip is). Page sizes are
bounded; a filtered list reads at most ``SCAN_MAX`` index entries per request and says
where to go on (``next_offset``), so 10,000 episodes cost the same per page as 100.
Also the page's vendored static files (uPlot and its license).
"""

from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from monitor.api.errors import ApiError, validation_error
from monitor.api.state import STORE
from monitor.api.store import EpisodeStore
from monitor.api.views import (
    MAX_PAGE,
    ROW_FIELDS,
    EpisodePage,
    EpisodeQuery,
    EpisodeRow,
    FlipList,
    FlipRow,
    FlipsQuery,
    StepsPage,
    StepsQuery,
    Totals,
    episode_row,
    matches,
)
from schemas.trace import EPISODES_FLIPPED, FLIPS_PREFIX, RECOVERIES, STEPS, decode_trace
from schemas.wire import BadEntry, decode

Q = TypeVar("Q", bound=BaseModel)
SCAN_MAX = 10 * MAX_PAGE
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "uPlot.LICENSE": "text/plain",
}


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/episodes", list_episodes)
    app.router.add_get("/v1/episodes/{episode_id}/steps", episode_steps)
    app.router.add_get("/v1/flips", list_flips)
    app.router.add_get("/v1/totals", totals)
    app.router.add_get("/static/{name}", static_file)


def _query(request: web.Request, model: type[Q]) -> Q:
    """The query string as ``model``; 422 naming the parameter (never echoing values)."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_error(exc) from None


def _json(body: BaseModel) -> web.Response:
    return web.Response(body=body.model_dump_json().encode(), content_type="application/json")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _rows(store: EpisodeStore, episode_ids: list[str]) -> list[EpisodeRow]:
    """Rows of ``episode_ids`` (HMGET of the row's fields, one pipelined call)."""
    pipe = store.redis.pipeline(transaction=False)
    for e in episode_ids:
        pipe.hmget(store.keys.episode(e), ROW_FIELDS)
    replies = await store.bounded(pipe.execute())
    rows = []
    for episode_id, values in zip(episode_ids, replies, strict=True):
        found = {n: _text(v) for n, v in zip(ROW_FIELDS, values, strict=True) if v is not None}
        rows.append(episode_row(episode_id, found))
    return rows


async def list_episodes(request: web.Request) -> web.Response:
    """Newest first; filters read at most SCAN_MAX index entries, then say where to go on."""
    q = _query(request, EpisodeQuery)
    store = request.app[STORE]
    items: list[EpisodeRow] = []
    cursor, end = q.offset, False
    filtered = any(v is not None for k, v in q.model_dump().items() if k not in ("limit", "offset"))
    chunk = MAX_PAGE if filtered else q.limit  # unfiltered: read exactly one page
    while len(items) < q.limit and cursor - q.offset < SCAN_MAX:
        page = await store.page(cursor, chunk)
        if not page:
            end = True
            break
        for row in await _rows(store, [e for e, _ in page]):
            cursor += 1
            if matches(row, q):
                items.append(row)
                if len(items) == q.limit:
                    break
        if len(page) < chunk and len(items) < q.limit:
            end = True
            break
    total = await store.bounded(store.redis.zcard(store.keys.episodes()))
    return _json(
        EpisodePage(
            items=items,
            next_offset=None if end else cursor,
            scanned=cursor - q.offset,
            total=int(total),
        )
    )


async def episode_steps(request: web.Request) -> web.Response:
    """The episode's scored steps, oldest first, ``limit`` at a time."""
    q = _query(request, StepsQuery)
    episode_id = request.match_info["episode_id"]
    store = request.app[STORE]
    keys = store.keys
    if not await store.bounded(store.redis.exists(keys.episode(episode_id))):
        raise ApiError(404, "unknown_episode", "no such episode", "episode_id")
    start = f"({q.after}" if q.after else "-"
    entries = await store.bounded(
        store.redis.xrange(keys.trace(episode_id), min=start, max="+", count=q.limit)
    )
    items = [t for _, fields in entries if (t := decode_trace(fields)) is not None]
    more = len(entries) == q.limit
    return _json(
        StepsPage(
            episode_id=episode_id, items=items, next_after=_text(entries[-1][0]) if more else None
        )
    )


async def list_flips(request: web.Request) -> web.Response:
    """The latest flips of every shard, merged, newest first, with the episode's labels."""
    q = _query(request, FlipsQuery)
    store = request.app[STORE]
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.xrevrange(keys.flips(shard), count=q.limit)
    flips = []
    for entries in await store.bounded(pipe.execute()):
        for _, fields in entries:
            try:
                ev = decode(fields)
            except BadEntry:
                continue
            if ev.kind == "flip" and (q.flag is None or ev.flag == q.flag):
                flips.append(ev)
    flips.sort(key=lambda f: f.ts, reverse=True)
    flips = flips[: q.limit]
    rows = {r.episode_id: r for r in await _rows(store, sorted({f.episode_id for f in flips}))}
    return _json(
        FlipList(
            items=[
                FlipRow(
                    episode_id=f.episode_id,
                    step=f.step,
                    flag=f.flag,
                    onset_step=f.onset_step,
                    mode=f.mode,
                    objective=f.objective,
                    runaway_index=f.runaway_index,
                    ts=f.ts,
                    environment=rows[f.episode_id].environment,
                    model=rows[f.episode_id].model,
                )
                for f in flips
            ]
        )
    )


async def totals(request: web.Request) -> web.Response:
    """The detectors' running totals, all shards added up, and the episode count."""
    store = request.app[STORE]
    keys = store.keys
    pipe = store.redis.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.hgetall(keys.totals(shard))
    pipe.zcard(keys.episodes())
    *hashes, episodes = await store.bounded(pipe.execute())
    sums: dict[str, int] = {}
    for h in hashes:
        for name, value in h.items():
            try:
                sums[_text(name)] = sums.get(_text(name), 0) + int(value)
            except ValueError:
                continue
    by_flag = {
        n[len(FLIPS_PREFIX) :]: v for n, v in sorted(sums.items()) if n.startswith(FLIPS_PREFIX)
    }
    return _json(
        Totals(
            episodes=int(episodes),
            episodes_flipped=sums.get(EPISODES_FLIPPED, 0),
            steps=sums.get(STEPS, 0),
            flips=sum(by_flag.values()),
            flips_by_flag=by_flag,
            recoveries=sums.get(RECOVERIES, 0),
        )
    )


async def static_file(request: web.Request) -> web.Response:
    """One of the page's vendored files (a fixed list: no path ever reaches the disk)."""
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise ApiError(404, "not_found", "no such file", "name")
    return web.Response(
        body=(STATIC / name).read_bytes(),
        content_type=content_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )

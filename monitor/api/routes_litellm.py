"""``POST /beta/litellm_basic_guardrail_api``: the monitor as a LiteLLM proxy guardrail.

The proxy calls it before each model call with the request's conversation; the turns
the monitor has not seen become steps (:mod:`monitor.integrations.litellm_guardrail`),
and the verdict on the newest one, within ``step_timeout_s`` (else the fail mode's),
is the answer. Requests of one episode are answered in turn. When the monitor cannot
answer at all (Redis away: 503), the proxy's ``unreachable_fallback`` decides.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from pydantic import ValidationError

from monitor.api.agent_steps import (
    EpisodeLocks,
    accepted_step,
    ensure_episode,
    publish,
    tool_agent_spec,
    verdict_of,
)
from monitor.api.errors import ApiError, validation_error
from monitor.api.state import WAITERS
from monitor.integrations.litellm_guardrail import (
    GuardrailRequest,
    GuardrailResponse,
    answer,
    assistant_turns,
    episode_key,
)

PATH = "/beta/litellm_basic_guardrail_api"
NONE = GuardrailResponse(action="NONE")


class _Bounded(OrderedDict[str, str]):
    """A dict that forgets its oldest keys past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class GuardrailState:
    locks: EpisodeLocks = field(default_factory=EpisodeLocks)
    traces: _Bounded = field(default_factory=lambda: _Bounded(100_000))
    last: _Bounded = field(default_factory=lambda: _Bounded(10_000))  # episode -> answer json


GUARDRAIL = web.AppKey("litellm_guardrail", GuardrailState)


def setup(app: web.Application) -> None:
    app[GUARDRAIL] = GuardrailState()
    app.router.add_post(PATH, guardrail)


async def _request(request: web.Request) -> GuardrailRequest:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "validation_error", "the body must be a JSON object", "body")
    try:
        return GuardrailRequest.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _reply(resp: GuardrailResponse | str) -> web.Response:
    body = resp if isinstance(resp, str) else resp.model_dump_json(exclude_none=True)
    return web.Response(body=body.encode(), content_type="application/json")


async def guardrail(request: web.Request) -> web.Response:
    req = await _request(request)
    if req.input_type != "request":
        return _reply(NONE)  # a post_call check of the answer: its turn comes next request
    state = request.app[GUARDRAIL]
    messages = req.structured_messages or []
    episode_id = episode_key(req, state.traces)
    turns = assistant_turns(messages)
    if not turns:
        return _reply(NONE)  # the opening request: nothing the agent did yet
    async with state.locks(episode_id):
        app = request.app
        spec = await ensure_episode(app, tool_agent_spec(episode_id, "litellm", req.model))
        accepted, newest = await accepted_step(app, episode_id), len(turns)
        if newest <= accepted:  # the proxy asked again about turns already judged
            return _reply(state.last.get(episode_id) or NONE)
        ticket = app[WAITERS].expect(episode_id, newest)  # before the newest is published
        for step in range(accepted + 1, newest + 1):
            calls, text = turns[step - 1]
            try:
                await publish(app, spec, step, calls, text)
            except BaseException:
                app[WAITERS].forget(episode_id, newest, ticket)
                raise
        verdict = await verdict_of(request, spec, newest, ticket)
        resp = answer(
            verdict.verdict, verdict.reason, verdict.reminder, req.texts, verdict.savepoint_step
        )
        state.last[episode_id] = resp.model_dump_json(exclude_none=True)
    return _reply(resp)

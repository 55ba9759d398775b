"""The provider-neutral model agent: context policy, limits, retries, usage, metrics.

Why a base class: every provider needs the same steps around its one HTTP call (fit the
history into the context, take a concurrency slot and a rate token, retry by the one
policy, convert a structured answer to the benchmark's text, account tokens and cost).
Providers implement only :meth:`ModelAgent._complete` and :meth:`ModelAgent._make_client`.
"""

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from workers.agents.base import AgentContext, Message, Reply, Usage
from workers.models.config import ResolvedOptions
from workers.models.context import FittedContext, estimate_tokens, fit_context
from workers.models.errors import (
    AttemptFailure,
    ModelRejected,
    ModelResponseError,
    classify_sdk_error,
)
from workers.models.limits import ModelLimits
from workers.models.metrics import ModelMetrics
from workers.models.pricing import Price, price_for
from workers.models.retry import RetryObserver
from workers.models.structured import StructuredMode, json_answer_to_text

log = logging.getLogger(__name__)
# statuses with which servers refuse a request shape (llama-cpp-python: 500 for a 422)
_REFUSAL_STATUS = frozenset({400, 404, 415, 422, 500, 501})


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """What a provider returned: the text, and the usage the API reported (if any)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Details of the last call, for the step record (beyond :class:`Usage`)."""

    raw_text: str
    structured: StructuredMode
    converted: bool  # the JSON answer was turned into answer text
    dropped_pairs: int
    retries: int
    price_known: bool
    usage_estimated: bool


class _CallObserver:
    """Counts one call's retries and forwards events to the metrics, when there are any."""

    def __init__(self, forward: RetryObserver | None) -> None:
        self.forward = forward
        self.retries = 0

    def attempt_done(self, outcome: str, latency_s: float) -> None:
        if self.forward is not None:
            self.forward.attempt_done(outcome, latency_s)

    def retrying(self, reason: str, delay_s: float) -> None:
        self.retries += 1
        if self.forward is not None:
            self.forward.retrying(reason, delay_s)


class ModelAgent(ABC):
    """An :class:`~workers.agents.base.Agent` backed by a model API."""

    provider: str = "model"
    #: structured modes to try, best first, when ``structured`` is ``auto``
    auto_modes: tuple[StructuredMode, ...] = (StructuredMode.OFF,)

    def __init__(
        self,
        options: ResolvedOptions,
        *,
        api_key: SecretStr | None,
        limits: ModelLimits,
        metrics: ModelMetrics | None = None,
    ) -> None:
        self.options = options
        self._api_key = api_key
        self._limits = limits
        self._metrics = metrics
        self._client: Any = None
        self._modes = self._initial_modes(options.structured)
        self._price: Price = (
            Price(*options.price_per_mtok) if options.price_per_mtok else price_for(options.model)
        )
        if not self._price.known:
            log.warning(
                "no price known for model %r (%s): its cost is recorded as 0",
                options.model,
                self.provider,
            )
        self.last_call: CallInfo | None = None

    def __repr__(self) -> str:  # never the key
        base = f", base_url={self.options.base_url!r}" if self.options.base_url else ""
        return f"{type(self).__name__}(model={self.options.model!r}{base})"

    def _initial_modes(self, mode: StructuredMode) -> list[StructuredMode]:
        if mode is StructuredMode.AUTO:
            return list(self.auto_modes)
        return [mode]

    @property
    def structured_mode(self) -> StructuredMode:
        """The mode the next call will use (``auto`` settles on the first that works)."""
        return self._modes[0]

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key.get_secret_value(),) if self._api_key else ()

    @abstractmethod
    def _make_client(self, api_key: str | None) -> Any:
        """Create the SDK client (SDK retries off, timeout set); called inside the loop."""

    @abstractmethod
    async def _complete(
        self, client: Any, messages: list[Message], mode: StructuredMode, names: Sequence[str]
    ) -> RawAnswer:
        """One HTTP call. Raise SDK errors as they are, or :class:`ModelResponseError`."""

    def _names(self, context: AgentContext) -> tuple[str, ...]:
        if self.options.objectives:
            return self.options.objectives
        env = getattr(context, "env", None)
        if env is not None:
            return tuple(env.objectives.names)
        return ()

    def _classify(self, exc: Exception) -> AttemptFailure | None:
        return classify_sdk_error(exc, self._secrets)

    async def act(self, context: AgentContext) -> Reply:
        """Answer the last user message of the (fitted) history."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        if self._client is None:
            self._client = self._make_client(
                self._api_key.get_secret_value() if self._api_key else None
            )
        fitted = fit_context(
            context.messages, self.options.context_tokens, reserve_tokens=self.options.max_tokens
        )
        if fitted.dropped_pairs:
            log.debug("context: dropped the %d oldest pairs", fitted.dropped_pairs)
        names = self._names(context)
        observer = _CallObserver(self._metrics.observer(self.provider) if self._metrics else None)
        answer, mode = await self._call_with_fallback(fitted, names, observer)

        text, converted = answer.text, False
        if mode is not StructuredMode.OFF and names:
            env = getattr(context, "env", None)
            formatter = getattr(env, "format_action", None)
            as_text = json_answer_to_text(answer.text, names, formatter)
            if as_text is not None:
                text, converted = as_text, True
        estimated = answer.input_tokens is None or answer.output_tokens is None
        input_tokens = answer.input_tokens if answer.input_tokens is not None else fitted.tokens
        output_tokens = (
            answer.output_tokens
            if answer.output_tokens is not None
            else estimate_tokens(answer.text)
        )
        cost = self._price.cost_usd(input_tokens, output_tokens)
        if self._metrics:
            self._metrics.record_usage(self.provider, input_tokens, output_tokens, cost)
        self.last_call = CallInfo(
            raw_text=answer.text,
            structured=mode,
            converted=converted,
            dropped_pairs=fitted.dropped_pairs,
            retries=observer.retries,
            price_known=self._price.known,
            usage_estimated=estimated,
        )
        return Reply(
            text=text,
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost,
                latency_s=loop.time() - started,
            ),
        )

    async def _attempt(
        self, messages: list[Message], mode: StructuredMode, names: Sequence[str]
    ) -> RawAnswer:
        """One attempt; a body the SDK cannot decode becomes a clear, key-free error."""
        try:
            return await self._complete(self._client, messages, mode, names)
        except ValueError:  # json.JSONDecodeError, pydantic's ValidationError
            raise ModelResponseError(
                f"{self.provider}: the response body is not valid JSON of the expected shape",
                provider=self.provider,
            ) from None

    def _mode_classifier(self, mode: StructuredMode) -> Any:
        """Classify, treating a server's refusal of the structured form as final.

        Some servers answer an unsupported ``response_format`` with 500 (llama-cpp-python
        wraps its 422 validation error); retrying that is pointless, so while another mode
        is left to try, a failure that names ``response_format`` is not retried.
        """

        def classify(exc: Exception) -> AttemptFailure | None:
            failure = self._classify(exc)
            if (
                failure is not None
                and mode is not StructuredMode.OFF
                and len(self._modes) > 1
                and failure.status in _REFUSAL_STATUS
                and "response_format" in failure.detail
            ):
                return AttemptFailure("client_error", False, failure.detail, status=failure.status)
            return failure

        return classify

    async def _call_with_fallback(
        self, fitted: FittedContext, names: Sequence[str], observer: RetryObserver
    ) -> tuple[RawAnswer, StructuredMode]:
        """Run the retry policy; in ``auto``, a server refusing a mode moves to the next."""
        while True:
            mode = self._modes[0] if names else StructuredMode.OFF
            try:
                answer = await self.options.retry.run(
                    lambda mode=mode: self._attempt(fitted.messages, mode, names),
                    provider=self.provider,
                    classify=self._mode_classifier(mode),
                    gate=lambda: self._limits.slot(self.provider, self.options.base_url),
                    observer=observer,
                )
            except ModelRejected as exc:
                if (
                    mode is not StructuredMode.OFF
                    and len(self._modes) > 1
                    and exc.status in _REFUSAL_STATUS
                ):
                    log.info(
                        "%s refused structured mode %s (HTTP %s); trying %s",
                        self.provider,
                        mode.value,
                        exc.status,
                        self._modes[1].value,
                    )
                    self._modes.pop(0)
                    continue
                raise
            return answer, mode

    async def aclose(self) -> None:
        """Close the SDK client and its connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

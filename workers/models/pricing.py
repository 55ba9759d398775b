"""A small price table for cost estimates (USD per million tokens, list prices).

Why a table and not an API: cost is an estimate recorded with every step so sweeps can be
budgeted; exactness is not needed. Models are matched by the longest known prefix, so
dated snapshots ("gpt-4o-mini-2024-07-18") find their family. An unknown model costs 0,
and :func:`price_for` says it is unknown so the caller can report that.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    known: bool = True

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


UNKNOWN = Price(0.0, 0.0, known=False)

PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    # Anthropic
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-opus-4": Price(15.00, 75.00),
}


def price_for(model: str, table: dict[str, Price] | None = None) -> Price:
    """The price of the longest matching prefix, or :data:`UNKNOWN` (cost 0, known False)."""
    table = PRICES if table is None else table
    best = ""
    for prefix in table:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return table[best] if best else UNKNOWN

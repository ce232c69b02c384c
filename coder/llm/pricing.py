"""Token estimates and a price table, for the cost so far and a pre-flight estimate.

Token counts before a call use a chars/4 heuristic (good to ~10-20% for English; no
tokenizer download needed). Prices are USD per million tokens; a file (JSON, TOML or
YAML mapping ``model: {input: X, output: Y}``) overrides or extends the table. Local
endpoints cost nothing.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

from coder.errors import BackendError

#: USD per 1M tokens (input, output); list prices of common models.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "o4-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
}
#: The Batch API is half price.
BATCH_DISCOUNT = 0.5


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters per token."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class PriceTable:
    """Prices per model; unknown models cost ``None`` (shown as unknown, never as 0)."""

    prices: dict[str, tuple[float, float]]

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        prices = dict(DEFAULT_PRICES)
        if path is not None:
            prices.update(_read_prices(Path(path)))
        return cls(prices)

    def lookup(self, model: str) -> tuple[float, float] | None:
        if model in self.prices:
            return self.prices[model]
        # Dated snapshots ('gpt-4o-mini-2024-07-18') cost what their family costs.
        for name in sorted(self.prices, key=len, reverse=True):
            if model.startswith(name):
                return self.prices[name]
        return None

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        local: bool = False,
        batch: bool = False,
    ) -> float | None:
        """USD for a call, 0 for a local endpoint, None when the model's price is unknown."""
        if local:
            return 0.0
        price = self.lookup(model)
        if price is None:
            return None
        usd = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
        return usd * (BATCH_DISCOUNT if batch else 1.0)


def _read_prices(path: Path) -> dict[str, tuple[float, float]]:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise BackendError(f"{path}: cannot read price table: {error}") from error
    if not isinstance(data, dict):
        raise BackendError(f"{path}: expected 'model: {{input: X, output: Y}}' entries")
    prices = {}
    for model, entry in data.items():
        try:
            prices[str(model)] = (float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError) as error:
            raise BackendError(
                f"{path}: model {model!r}: expected input and output USD per 1M tokens"
            ) from error
    return prices

"""An OpenAI-compatible server that answers from gold labels with a set error rate.

For cost and stability *arithmetic* only (the cascade's share of calls, tokens, run-to-run
agreement), never for model quality: its answers are the gold labels, corrupted on
purpose. Each field of each answer (themes, stance, relevance) is wrong with probability
``error_rate``: themes lose a gold code, gain a wrong one or swap one for a wrong one;
stance takes another value of the scale; relevance flips (a flipped answer is coded as its
new relevance says). Only codes the request's JSON schema allows are returned, so a
shortlisted prompt that leaves a gold code out cannot get it back.

Sampling follows the request, as a real model's does: at ``temperature`` 0 the answer to
an item is always the same (the errors fall on the same items every run); above 0 a
request with a ``seed`` gets the answer that seed picks (same seed, same answer) and one
without a seed a fresh draw. Items are matched to gold by response id, else by text.

Run it by hand or from a benchmark::

    python tests/llm_gold_server.py /work/shared/gold/nhs_pxtextmining_v6 --error-rate 0.1

prints its base URL (``http://127.0.0.1:PORT/v1``) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
from pathlib import Path
from typing import Any

try:
    from tests.llm_fake_server import FakeOpenAI, _allowed, _resolve
except ImportError:  # pragma: no cover - run as a script: python tests/llm_gold_server.py
    from llm_fake_server import FakeOpenAI, _allowed, _resolve  # type: ignore[no-redef]


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


class GoldAnswers:
    """Gold labels by response id and by text (``{id, text, labels, stance, relevant}``)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_text: dict[str, dict[str, Any]] = {}
        for item in items:
            self.by_id[str(item["id"])] = item
            self.by_text.setdefault(_normal(str(item.get("text") or "")), item)

    @classmethod
    def from_folder(cls, folder: str | Path) -> GoldAnswers:
        """Read ``dev.jsonl`` (or ``items.jsonl``) of a gold folder, or a JSONL file itself."""
        path = Path(folder)
        if path.is_dir():
            path = next(p for p in (path / "dev.jsonl", path / "items.jsonl") if p.exists())
        items = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        return cls(items)

    def find(self, response_id: str, text: str) -> dict[str, Any] | None:
        return self.by_id.get(response_id) or self.by_text.get(_normal(text))


class GoldOpenAI(FakeOpenAI):
    """The fake server of ``tests/llm_fake_server.py`` answering from gold labels."""

    def __init__(
        self,
        gold: GoldAnswers,
        *,
        error_rate: float = 0.1,
        seed: int = 0,
        latency: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(latency=latency, host=host)
        self.gold = gold
        self.error_rate = error_rate
        self.seed = seed
        self.unknown_items = 0
        self._request = threading.local()
        self._draws = 0

    def completion(self, body: dict[str, Any], fault: str | None = None) -> dict[str, Any]:
        """A chat completion answering ``body`` from gold (sampling as its temperature/seed say)."""
        self._request.temperature = float(body.get("temperature") or 0.0)
        self._request.seed = body.get("seed")
        return super().completion(body, fault)

    def _rng(self, response_id: str, text: str) -> random.Random:
        temperature = getattr(self._request, "temperature", 0.0)
        request_seed = getattr(self._request, "seed", None)
        if temperature <= 0:
            salt = "t0"
        elif request_seed is not None:
            salt = f"seed={request_seed}"
        else:
            with self.lock:
                self._draws += 1
                salt = f"draw={self._draws}"
        key = f"{self.seed}|{salt}|{response_id}|{_normal(text)}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))

    def _item(
        self,
        schema: dict[str, Any],
        root: dict[str, Any],
        response_id: str,
        text: str,
        fault: str | None,
    ) -> dict[str, Any]:
        gold = self.gold.find(response_id, text)
        if gold is None or fault is not None:
            if gold is None:
                with self.lock:
                    self.unknown_items += 1
            return super()._item(schema, root, response_id, text, fault)
        rng = self._rng(response_id, text)
        properties = schema.get("properties", {})
        item: dict[str, Any] = {}
        if "response_id" in properties:
            item["response_id"] = response_id
        if "question" in properties:
            item["question"] = properties["question"].get("default")
        relevant = gold.get("relevant") is not False
        if rng.random() < self.error_rate:
            relevant = not relevant
        item["relevant"] = relevant
        stances = _allowed(properties["stance"], root) if "stance" in properties else []
        if stances:
            stance = gold.get("stance") if gold.get("stance") in stances else None
            if rng.random() < self.error_rate:
                others = [value for value in stances if value != stance]
                stance = rng.choice(others) if others else stance
            item["stance"] = stance if relevant else None
        themes: list[str] = []
        if "themes" in properties:
            theme_schema = _resolve(properties["themes"]["items"], root)
            allowed = _allowed(theme_schema["properties"]["code"], root)
            themes = [code for code in gold.get("labels") or [] if code in allowed]
            if rng.random() < self.error_rate:
                themes = self._corrupt(themes, allowed, rng)
            if not relevant:
                themes = []
        words = text.split()
        quote = " ".join(words[:5]) if words else text
        if "themes" in properties:
            item["themes"] = [
                {"code": code, "evidence": quote, "confidence": 0.9} for code in themes
            ]
        item["rationale"] = "gold-answering fake server"
        item["confidence"] = 0.8
        return item

    @staticmethod
    def _corrupt(themes: list[str], allowed: list[str], rng: random.Random) -> list[str]:
        wrong = [code for code in allowed if code not in themes]
        kinds = ["add"] if wrong else []
        if themes:
            kinds.append("drop")
            if wrong:
                kinds.append("swap")
        if not kinds:
            return themes
        kind = rng.choice(kinds)
        themes = list(themes)
        if kind in ("drop", "swap"):
            themes.pop(rng.randrange(len(themes)))
        if kind in ("add", "swap"):
            themes.append(rng.choice(wrong))
        return themes


def main(argv: list[str] | None = None) -> None:
    """Serve gold answers on 127.0.0.1 until interrupted (prints the base URL first)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gold", help="a gold folder (dev.jsonl / items.jsonl) or a JSONL file")
    parser.add_argument("--error-rate", type=float, default=0.1, help="share of wrong fields")
    parser.add_argument("--seed", type=int, default=0, help="the server's own seed")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument(
        "--until-stdin-closes",
        action="store_true",
        help="stop when stdin closes (a parent holding the pipe died, even by SIGKILL)",
    )
    args = parser.parse_args(argv)
    server = GoldOpenAI(
        GoldAnswers.from_folder(args.gold),
        error_rate=args.error_rate,
        seed=args.seed,
        latency=args.latency,
    )
    with server:
        print(server.base_url, flush=True)
        if args.until_stdin_closes:
            # The parent's end of the pipe closes when it exits however it exits, so the
            # server cannot outlive the benchmark that started it.
            sys.stdin.read()
        else:
            threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover - manual and benchmark use
    main()

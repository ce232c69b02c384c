"""A heuristic prompt-injection detector, run on the input text for either backend.

It cannot stop an attack (the run-time response model does that: no answer can leave
the codebook); it makes one visible, by flagging the proposal
``possible_prompt_injection`` so a reviewer looks at it twice.
"""

from __future__ import annotations

import re

FLAG = "possible_prompt_injection"

_PATTERNS = [
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules|prompt|guidelines|above|previous|prior)\b",
    r"\b(label|code|classify|tag|mark|categori[sz]e)\b.{0,30}\b(everything|all (the )?(responses|answers|items|of them)|every (response|answer))\b",
    r"\b(you are now|act as|pretend to be|new instructions|system prompt|developer mode|jailbreak)\b",
    r"\b(assign|apply|use|output|return|respond with)\b.{0,20}\b(the )?(code|label|theme|stance)\b.{0,10}[\"'`]?[a-z_]+[\"'`]?.{0,30}\b(always|regardless|no matter|for (all|every))\b",
    r"\b(respond|reply|answer|output)\b.{0,20}\b(only|exactly)\b.{0,20}\b(json|with the following)\b",
    r"</?(system|assistant|response|instructions?)>",
    r"\bas an ai\b",
]
_DETECTOR = re.compile(
    "|".join(f"(?:{pattern})" for pattern in _PATTERNS), re.IGNORECASE | re.DOTALL
)


def looks_like_prompt_injection(text: str) -> bool:
    """True if the text reads like instructions to a model rather than a response."""
    return bool(_DETECTOR.search(text))

"""The quick key check never lets a key through that the full walk would have masked.

``coder.llm.secret_screen`` skips the scrubbing walk when a value's JSON text holds no
key. The property tested: whenever the check says "no key", the full walk
(``scrub_value`` / ``scrub_result``) would have changed nothing.
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from coder.backends.base import ProposalResult
from coder.llm.secret_screen import (
    may_hold_secret,
    result_may_hold_secret,
    scrub_fast,
    scrub_result_fast,
)
from coder.llm.secrets import MASK, scrub_result, scrub_value
from schemas import Proposal

KEY = "sk-test-CONFIGURED-0123456789abcdef"
SHAPED = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0"

# Texts built from pieces that make keys likely: key shapes, "Bearer ", and the characters
# JSON escapes (quote, backslash, control characters) right next to them.
pieces = st.sampled_from(
    [KEY, SHAPED, "Bearer ", "sk-", "AIza", "\n", "\t", "\x00", '"', "\\", " ", "é", "x", "-"]
    # every key shape's start (the quick check looks for these first) and a long tail
    + ["hf_", "ghp_", "gho_", "xai-", "Bearer", "\r", "r ", "0123456789abcdefghijABCDEFGHIJ"]
)
texts = st.lists(
    st.one_of(pieces, st.text(alphabet=string.printable + "é\x01", max_size=8)), max_size=8
).map("".join)
values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(texts, st.integers(), st.none(), st.booleans()),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_no_key_seen_means_the_walk_changes_nothing(value: Any) -> None:
    assert scrub_fast(value, [KEY]) == scrub_value(value, [KEY])


@settings(max_examples=200, deadline=None)
@given(texts, texts)
def test_a_proposal_result_is_screened_like_the_walk(rationale: str, version: str) -> None:
    result = ProposalResult(
        response_id="r1",
        proposal=Proposal(response_id="r1", question="H1", rationale=rationale),
        model_version=version or None,
        params={"model": version, "shortlist": [rationale]},
    )
    if not result_may_hold_secret(result, [KEY]):
        assert scrub_result(result, [KEY]) == result


def test_a_key_right_after_an_escaped_character_is_seen() -> None:
    # JSON writes a line break as \n: the key then follows a letter in the text, where the
    # string had a word boundary. The check must still see it.
    for before in ("\n", "\t", "\x01", '"', "\\"):
        value = {"content": f"{before}{SHAPED}"}
        assert may_hold_secret(json.dumps(value, ensure_ascii=False))
        assert scrub_fast(value)["content"] == before + MASK


def test_configured_key_and_bearer_tokens_are_seen() -> None:
    assert scrub_fast({"model": f"gpt key={KEY}"}, [KEY]) == {"model": f"gpt key={MASK}"}
    assert scrub_fast(["Bearer abcdefghijklmnopqrstu"]) == [f"Bearer {MASK}"]
    # A key JSON would escape cannot be found in the text: the full walk runs.
    odd = 'key-with-"quote"-inside'
    assert scrub_fast({"a": f"x{odd}y"}, [odd]) == {"a": f"x{MASK}y"}


def test_clean_values_come_back_as_they_are() -> None:
    value = {"id": "chatcmpl-1", "choices": [{"message": {"content": "fine\nanswer"}}]}
    assert scrub_fast(value, [KEY]) is value
    result = ProposalResult(
        response_id="r1",
        proposal=Proposal(response_id="r1", question="H1", rationale="no key here"),
        model_version="gpt-4o-mini",
    )
    assert not result_may_hold_secret(result, [KEY])
    assert scrub_result_fast(result, [KEY]) is result
    echoed = ProposalResult(response_id="r1", proposal=None, model_version=f"gpt {KEY}")
    assert scrub_result_fast(echoed, [KEY]).model_version == f"gpt {MASK}"

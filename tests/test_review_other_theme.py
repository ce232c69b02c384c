"""The review app shows a theme the LLM said is needed but was not in its shortlist."""

from __future__ import annotations

from coder.review import ReviewItem
from coder.store import StoredProposal
from review_tui.proposal_view import render_proposal
from schemas import Labels, Proposal, Response
from tests.review_data import small_codebook


def _item(proposal: Proposal) -> ReviewItem:
    stored = StoredProposal(
        id=1,
        response_id="r1",
        backend="openai",
        model="gpt-test",
        model_version=None,
        prompt_template_hash=None,
        system_prompt_hash=None,
        codebook_version=1,
        proposal=proposal,
        confidence=0.5,
        status="ok",
        error=None,
        created_at="2026-11-29T00:00:00Z",
    )
    response = Response(id="r1", text="We had no digital skills on the ward.", question="H1")
    return ReviewItem(response=response, proposal=stored, labels=Labels(), status="unreviewed", flagged=False)


def test_other_theme_needed_is_shown_with_the_proposal() -> None:
    proposal = Proposal(response_id="r1", question="H1", other_theme_needed="Digital skills of staff")
    shown = render_proposal(_item(proposal), small_codebook(), blind=False).plain
    assert "Theme not in the shortlist: Digital skills of staff" in shown


def test_no_line_when_the_llm_needed_no_other_theme() -> None:
    shown = render_proposal(_item(Proposal(response_id="r1", question="H1")), small_codebook(), blind=False).plain
    assert "not in the shortlist" not in shown

"""The review app as ``coder serve`` runs it for one signed-in browser session."""

from __future__ import annotations

from review_tui.app import ReviewApp


class ServedReviewApp(ReviewApp):
    """The review app with the reviewer fixed by the sign-in (the browser cannot change it)."""

    TITLE = "coder review (served)"

    def switch_reviewer(self, name: str) -> None:
        self.notify(
            f"Signed in as {self.session.reviewer}: the reviewer cannot be changed here.",
            severity="warning",
        )

    def export_labels(self) -> None:
        # The file would land on the server, beside the project, where a browser reviewer
        # can neither see nor fetch it; exports are the lead's job (coder export).
        self.notify(
            "Export is not available in the browser: the project's lead runs 'coder export'.",
            severity="warning",
        )

"""The queue: a page of the filtered queue in a table, with filters, sort and bulk accept."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from coder import review
from coder.review import FilterError, parse_filter
from review_tui.confirm import ConfirmScreen
from review_tui.footer import KeyFooter
from review_tui.pickers import ChoicePicker, ThemePicker
from review_tui.prompt import PromptScreen
from review_tui.queue import PAGE_SIZE, QueueRow, page_count, page_of, queue_page
from review_tui.queue_rows import COLUMNS, GAP, ROW_COLUMN, cells, column_widths, line
from review_tui.queue_table import QueueTable
from review_tui.session import ReviewSession
from review_tui.status_bar import StatusBar

FILTER_HINT = (
    "status:unreviewed|accepted|corrected|skipped|flagged  question:H1  theme:ID  tag:X  "
    "reviewer:NAME  disagree\n"
    'conf<0.6  same:"not really"  any words        ↓ or Enter: to the table   '
    "= same text   g group action"
)


class QueueScreen(Screen[None]):
    """Every response with its status; Enter opens one in the review screen."""

    BINDINGS = [
        Binding("enter", "open", "Open", id="queue.open", tooltip="Review the highlighted item"),
        Binding(
            "slash",
            "focus_filter",
            "Filter",
            key_display="/",
            id="queue.filter",
            tooltip="Filter and search",
        ),
        Binding(
            "escape",
            "back",
            "Back",
            id="queue.back",
            tooltip="Back to the review",
        ),
        Binding(
            "o",
            "toggle_order",
            "Order",
            id="queue.order",
            tooltip="Least confident first / import order",
        ),
        Binding(
            "equals_sign",
            "same_text",
            "Same text",
            key_display="=",
            id="queue.same_text",
            tooltip="Show the answers that say exactly what the highlighted one says",
        ),
        Binding(
            "g",
            "group",
            "Group",
            id="queue.group",
            tooltip="Label every answer shown at once (one undo step)",
        ),
        Binding("u", "undo", "Undo", id="queue.undo", tooltip="Undo the last decision or group"),
        Binding("down", "to_table", "Table", show=False),
        Binding(
            "b",
            "bulk_accept",
            "Bulk accept",
            id="queue.bulk_accept",
            tooltip="Accept proposals above a confidence",
        ),
        Binding(
            "right_square_bracket,pagedown",
            "page(1)",
            "Next page",
            key_display="]",
            id="queue.next_page",
        ),
        Binding(
            "left_square_bracket,pageup",
            "page(-1)",
            "Prev page",
            key_display="[",
            id="queue.previous_page",
        ),
        Binding("question_mark", "help", "Help", key_display="?", id="queue.help"),
    ]

    def __init__(self, session: ReviewSession) -> None:
        super().__init__()
        self.session = session
        self.page = 0
        self.opening = True  # set by the app each time the queue is opened
        self._rows: list[QueueRow] = []  # the rows in the table
        self.widths: tuple[int, ...] = ()  # the fields' widths (column_widths)
        self._styled_theme: str | None = None  # the theme the nodes were last styled in
        self._page_size = 0  # the rows per page of the last fill
        self.row_layouts = 0  # how often the table's rows were all added anew

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status-bar")
        yield Input(
            value=self.session.queue_filter.describe(),
            placeholder="filter / search — Enter applies",
            id="queue-filter",
        )
        yield Static(FILTER_HINT, id="queue-hint")
        yield QueueTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="queue-info")
        yield KeyFooter(compact=True)

    def _set_widths(self, table_width: int) -> bool:
        """Lay the fields out for a table this wide; False when nothing changed."""
        widths = column_widths(table_width)
        if widths == self.widths:
            return False
        self.widths = widths
        table = self.query_one(DataTable)
        table.clear(columns=True)
        width = sum(widths) + len(GAP) * (len(widths) - 1)
        table.add_column(line(COLUMNS, widths), key=ROW_COLUMN, width=width)
        self._rows = []  # every row is drawn again at the new widths
        return True

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Textual restyles every node of a pushed screen, and the table then drops every
        # row it has rendered: most of the cost of opening the queue at 100k answers.
        # The styles change only with the theme, so restyle only when it has changed.
        # (Textual calls the handlers from the subclass down, so Screen's own handler
        # reads the event's public refresh_styles flag after this one sets it.)
        if self.app.theme == self._styled_theme:
            event.refresh_styles = False
        self._styled_theme = self.app.theme
        # The screen is installed once and shown again and again: refresh it each time.
        self.session.sync()
        self.query_one("#queue-filter", Input).value = self.session.queue_filter.describe()
        if self.widths:
            self.page = page_of(self.session, self.session.position, self.page_size)
            self.fill()
        # else the first opening: the table is not laid out yet, and rows added now would
        # be laid out again for its real size; its Resized message fills it, once.
        if self.opening:
            # Typing goes to the filter at once (`question:H5` must not reach the table's
            # keys); Enter or ↓ moves to the table. Back from a dialog, focus stays put.
            self.opening = False
            self.query_one("#queue-filter", Input).focus()

    @property
    def page_size(self) -> int:
        """Rows per page: as many as the table shows (the rows it is given, it measures)."""
        fit = self.query_one(QueueTable).rows_that_fit()
        # Before the first layout, the terminal's height is an upper bound of what fits
        # (the table's Resized message then trims the page).
        return fit or self._page_size or min(PAGE_SIZE, max(1, self.app.size.height))

    def fill(self, cursor_row: int | None = None) -> None:
        """Show the current page; the cursor on ``cursor_row`` (-1: the last row), else on
        the item under review when it is on this page."""
        if not self.widths:
            return  # not laid out yet: the table's first Resized fills it
        session = self.session
        table = self.query_one(DataTable)
        size = self._page_size = self.page_size
        self.page = max(0, min(self.page, page_count(session, size) - 1))
        rows = queue_page(session, self.page, size)
        if [row.response_id for row in rows] == [row.response_id for row in self._rows]:
            # The same page again (back from reviewing an item): re-adding the rows makes
            # the table measure and render every cell again; updating those that changed
            # costs almost nothing.
            for row, shown in zip(rows, self._rows, strict=True):
                if row != shown:
                    table.update_cell(
                        row.response_id, ROW_COLUMN, line(cells(row), self.widths)
                    )
        else:
            table.clear()
            self.row_layouts += 1
            for row in rows:
                table.add_row(line(cells(row), self.widths), key=row.response_id)
        self._rows = rows
        if cursor_row is not None and rows:
            table.move_cursor(row=cursor_row % len(rows), animate=False)
        elif session.view and page_of(session, session.position, size) == self.page:
            table.move_cursor(row=session.position - self.page * size, animate=False)
        first = self.page * size + 1
        last = min(len(session.view), (self.page + 1) * size)
        info = (
            f"rows {first:,}-{last:,} of {len(session.view):,}   page {self.page + 1} of "
            f"{page_count(session, size)}   order: {session.order_name}"
            if session.view
            else "No response matches this filter."
        )
        self.query_one("#queue-info", Static).update(info)
        self.query_one(StatusBar).show(session)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "page":
            delta = int(str(parameters[0]))
            return 0 <= self.page + delta < page_count(self.session, self.page_size)
        if action in ("open",):
            return bool(self.session.view)
        if action == "bulk_accept":
            return not self.session.blind and bool(self.session.view)
        if action in ("same_text", "group"):
            return bool(self.session.view)
        if action == "undo":
            return self.session.can_undo
        if action == "to_table":
            return self.focused is self.query_one("#queue-filter", Input)
        return True

    # --- actions -------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            self.apply_filter(event.value)
        except FilterError as error:  # a typo: say so, keep the box as typed to fix it
            self.notify(str(error), severity="error", timeout=8)
            return
        self.query_one(DataTable).focus()

    def apply_filter(self, text: str) -> int:
        # The filter has focus when the queue opens, so a habitual `/` lands in the box.
        count = self.session.set_filter(parse_filter(text.lstrip("/")))
        self.page = page_of(self.session, self.session.position, self.page_size)
        self.fill()
        return count

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._open(str(event.row_key.value), event.cursor_row)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            self._open(str(row_key.value), table.cursor_row)

    def _open(self, response_id: str, row: int) -> None:
        self.session.go_to(response_id, position=self.page * self._page_size + row)
        self.dismiss()

    def action_to_table(self) -> None:
        self.query_one(DataTable).focus()

    def _highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_same_text(self) -> None:
        """Filter to the answers identical to the highlighted one ("Yes", "Agree")."""
        response_id = self._highlighted()
        if response_id is None:
            return
        text = self.session.store.response(response_id).text
        try:
            queue_filter = parse_filter(self.query_one("#queue-filter", Input).value)
        except FilterError:  # a typo in the box: the same-text filter alone
            queue_filter = review.QueueFilter()
        queue_filter.same = review.normalised_answer(text)
        queue_filter.text = ""
        count = self.session.set_filter(queue_filter)
        self.query_one("#queue-filter", Input).value = queue_filter.describe()
        self.page = page_of(self.session, self.session.position, self.page_size)
        self.fill()
        self.query_one(DataTable).focus()
        self.notify(f"{count:,} answer(s) say the same. g labels them together.")

    def action_undo(self) -> None:
        message = self.session.undo()
        self.notify(message.capitalize() + ".")
        self.fill()

    def action_group(self) -> None:
        """Pick a change, confirm, and write it for every answer the filter shows."""
        session = self.session
        kinds = [
            (kind, text)
            for kind, text in review.GROUP_KINDS.items()
            if not (session.blind and kind == "accept")
            and not (kind == "stance" and session.codebook.stance is None)
        ]

        def kind_chosen(kind: str | None) -> None:
            if kind is None:
                return
            if kind == "stance" and session.codebook.stance is not None:
                choices = [(v.id, v.label or v.id) for v in session.codebook.stance.values]
                self.app.push_screen(
                    ChoicePicker("Stance for every answer shown", choices, None),
                    lambda value: self._confirm_group(review.GroupChange(kind, value), value),
                )
            elif kind in ("add_theme", "remove_theme"):
                themes = session.codebook.themes_for(session.queue_filter.question)
                self.app.push_screen(
                    ThemePicker(themes, set()),
                    lambda value: self._confirm_group(review.GroupChange(kind, value), value),
                )
            elif kind == "not_relevant":
                self.app.push_screen(
                    PromptScreen("Exclude every answer shown: why?", "e.g. did not answer"),
                    lambda reason: self._confirm_group(
                        review.GroupChange(kind, reason or None), reason
                    ),
                )
            else:
                self._confirm_group(review.GroupChange(kind), kind)

        self.app.push_screen(ChoicePicker("Group action", kinds, None), kind_chosen)

    def _confirm_group(self, change: review.GroupChange, answer: str | None) -> None:
        if answer is None:
            return  # the picker was cancelled
        candidates = self.session.group_candidates(change)
        if not candidates:
            self.notify("No answer shown here takes that change.", severity="warning")
            return
        message = Text(
            f"{change.describe()} for {len(candidates):,} answer(s) in the current filter "
            f"({self.session.queue_filter.describe() or 'everything'})?\n"
            f"Each answer gets its own decision by {self.session.reviewer}; "
            "u undoes the whole group in one step."
        )

        def confirmed(yes: bool | None) -> None:
            if yes:
                written = self.session.apply_group(change, candidates)
                self.notify(f"Changed {written:,} answer(s). u undoes them together.")
                self.fill()

        self.app.push_screen(ConfirmScreen("Group action", message), confirmed)

    def action_focus_filter(self) -> None:
        self.query_one("#queue-filter", Input).focus()

    def action_back(self) -> None:
        if self.focused is self.query_one("#queue-filter", Input):
            self.query_one(DataTable).focus()
            return
        self.dismiss()

    def action_toggle_order(self) -> None:
        order = "import" if self.session.order_name == "confidence" else "confidence"
        self.session.set_order(order)
        self.page = page_of(self.session, self.session.position, self.page_size)
        self.fill()

    def action_page(self, delta: int) -> None:
        self.page += int(delta)
        self.fill()

    def on_queue_table_page_requested(self, event: QueueTable.PageRequested) -> None:
        """Past the table's last (first) row: the next page's first (previous page's last);
        PgDn/PgUp keep the cursor's row, or at the queue's ends go to its last/first row."""
        event.stop()
        table = self.query_one(QueueTable)
        forward = event.delta > 0
        if 0 <= self.page + event.delta < page_count(self.session, self.page_size):
            self.page += event.delta
            self.fill(cursor_row=table.cursor_row if event.keep_row else (0 if forward else -1))
        elif event.keep_row and table.row_count:
            table.move_cursor(row=table.row_count - 1 if forward else 0, animate=False)

    def on_queue_table_resized(self, event: QueueTable.Resized) -> None:
        """A new size: the fields laid out for the width, and the page that holds the
        highlighted row with as many rows as fit."""
        event.stop()
        table = self.query_one(QueueTable)
        if not self.widths:  # the first layout: the page that holds the item under review
            self._set_widths(table.size.width)
            self.page = page_of(self.session, self.session.position, self.page_size)
            self.fill()
            return
        highlighted = self.page * self._page_size + (table.cursor_row if table.row_count else 0)
        relaid = self._set_widths(table.size.width)
        fit = table.rows_that_fit()
        if fit == self._page_size and not relaid:
            return
        fit = fit or max(1, self._page_size)
        self.page = highlighted // fit
        self.fill(cursor_row=highlighted - self.page * fit)

    def action_help(self) -> None:
        self.app.open_help()  # type: ignore[attr-defined]

    def action_bulk_accept(self) -> None:
        def threshold_given(value: str | None) -> None:
            if value is None:
                return
            try:
                threshold = float(value)
            except ValueError:
                self.notify(f"Not a number: {value!r}", severity="error")
                return
            candidates = review.bulk_accept_candidates(
                self.session.view, self.session.reviewer, threshold
            )
            if not candidates:
                self.notify(f"Nothing unreviewed at confidence ≥ {threshold:g} here.")
                return
            message = (
                f"Accept the model's proposal for {len(candidates):,} unreviewed item(s) with "
                f"confidence ≥ {threshold:g} in the current filter "
                f"({self.session.queue_filter.describe() or 'everything'})?\n"
                f"{len(candidates):,} item(s) will change; each gets a 'bulk_accept' decision "
                f"by {self.session.reviewer} (u undoes them together)."
            )

            def confirmed(answer: bool | None) -> None:
                if answer:
                    written = self.session.apply_group(review.GroupChange("accept"), candidates)
                    self.notify(f"Accepted {written:,} proposal(s).")
                    self.fill()

            self.app.push_screen(ConfirmScreen("Bulk accept", Text(message)), confirmed)

        self.app.push_screen(
            PromptScreen(
                "Bulk accept: minimum confidence",
                value="0.9",
                hint="Unreviewed items in the current filter at or above this confidence.",
            ),
            threshold_given,
        )

"""The review app (Textual): ``coder review --reviewer NAME``.

Layout of the package (one screen or widget per module, styles in ``review.tcss``):

- ``app.py`` — thin App: pushes screens, routes palette commands.
- ``session.py`` — the data layer for the app: position in the queue, the item on
  screen and its unsaved *draft* labels, the undo stack, progress counts. It calls
  :mod:`coder.review` for everything that is reviewing logic (decisions, undo, order,
  filters, bulk accept, adjudication) and holds no widgets.
- ``queue.py`` — one page of the queue for the table (texts and themes read per page).
- screens: ``review_screen``, ``queue_screen``, ``adjudication_screen``, and the modal
  ``help_screen``, ``definitions_screen``, ``confirm``, ``reason``, ``prompt``, ``pickers``.
- widgets: ``response_view``, ``proposal_view`` (on ``text_pane``), ``status_bar``.
- ``commands.py`` — command palette provider; ``retrain.py`` — active-learning hook.

Rules: the core never imports this package. Decisions are written synchronously
(one INSERT, WAL) before the next item is drawn, so what the screen shows is always
in the store; a draft is committed when the reviewer accepts or leaves the item,
and on quit. Speed: the queue is an in-memory index (one scan per table at start),
one item is rendered at a time, the queue table shows one page, and the footer is only
rebuilt when the set of working keys changes.
"""

"""``coder serve`` (the review app in browsers) and ``coder reviewers`` (who may sign in)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from coder.cli.common import db_option, handle_errors, open_store, plain
from coder.errors import CoderError

DEFAULT_PORT = 8000


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; another than 127.0.0.1 lets other machines connect "
    "(put a TLS reverse proxy in front).",
)
@click.option(
    "--port", type=int, default=DEFAULT_PORT, show_default=True, help="Port (0: any free port)."
)
@click.option(
    "--public-url",
    default=None,
    metavar="URL",
    help="The address reviewers use when it differs from http://HOST:PORT, e.g. "
    "https://review.example.org behind a reverse proxy (the page's websocket URL is built "
    "from it; https makes the sign-in cookie Secure).",
)
@click.option(
    "--blind",
    is_flag=True,
    help="Every session is blind: no model proposal, no other reviewer's decisions "
    "(double coding: reviewers may then share items).",
)
@click.option(
    "--order",
    type=click.Choice(["confidence", "import"]),
    default=None,
    help="Review order of every session (default: least confident first; import when --blind).",
)
@handle_errors
def serve(
    db_path: Path | None,
    host: str,
    port: int,
    public_url: str | None,
    blind: bool,
    order: str | None,
) -> None:
    """Serve the review app to browsers: one app process per signed-in reviewer.

    Reviewers sign in with the link 'coder reviewers add NAME' prints; anyone without a
    valid token gets HTTP 403 and no session. Every decision is recorded under the signed-in
    reviewer's name, and two reviewers are never given the same item at once, unless it is
    double coded (assigned to both by 'coder assign --overlap', or a --blind review).
    'coder reviewers list' shows who is on which item. Sign-ins and session ends are logged here, on stderr. Listens on
    127.0.0.1 unless --host says otherwise; see the docs for running it behind nginx or
    Caddy with TLS. Stop with Ctrl+C.
    """
    try:
        from coder.serve import ReviewServer
    except ImportError as error:
        raise CoderError(
            f"coder serve needs textual-serve ({error}): pip install 'coder[serve]'"
        ) from error
    from coder import reviewers
    from coder.review import codebook_or_error

    store = open_store(db_path)
    try:
        if store.count_responses() == 0:
            raise CoderError(f"{store.path}: no responses yet: run 'coder import FILE' first")
        codebook_or_error(store)
        signed_up = [info for info in reviewers.list_reviewers(store) if info.created_at]
        path = store.path.resolve()
    finally:
        store.close()
    if not any(info.active for info in signed_up):
        click.echo(
            "No reviewer can sign in yet: add one with 'coder reviewers add NAME'.", err=True
        )
    if not _is_loopback(host) and not (public_url or "").startswith("https://"):
        click.echo(
            f"Warning: listening on {host} without TLS: tokens and answers cross the network "
            "in clear. Put a TLS reverse proxy in front and give --public-url https://…",
            err=True,
        )
    server = ReviewServer(
        path, host=host, port=port, public_url=public_url, blind=blind, order=order
    )

    def ready(url: str) -> None:
        click.echo(f"Serving {path} on {url} (Ctrl+C to stop)", err=True)

    server.serve_forever(on_ready=ready)


@click.group("reviewers")
def reviewers_group() -> None:
    """Add, list and revoke the reviewers who may sign in to 'coder serve'."""


@reviewers_group.command("add")
@click.argument("name")
@db_option
@click.option(
    "--url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="The address reviewers open (as 'coder serve' is reached: --public-url, or "
    "http://HOST:PORT).",
)
@click.option(
    "--replace", is_flag=True, help="Issue a new token to a reviewer who has one (the old one stops working)."
)
@handle_errors
def add(name: str, db_path: Path | None, url: str, replace: bool) -> None:
    """Create a sign-in token for reviewer NAME and print their sign-in link.

    The link holds the token: give it to NAME only. It is shown once; the project keeps
    only a hash of it ('coder reviewers add NAME --replace' issues a new one).
    """
    from coder import reviewers

    store = open_store(db_path, create=False)
    try:
        token = reviewers.add_reviewer(store, name, replace=replace)
    finally:
        store.close()
    click.echo(reviewers.sign_in_link(url, name, token))
    click.echo(f"Sign-in link for {name} (shown once; give it to {name} only).", err=True)


@reviewers_group.command("list")
@db_option
@handle_errors
def list_(db_path: Path | None) -> None:
    """List reviewers: token status, last sign-in, and the item each is on now."""
    from rich.table import Table

    from coder import reviewers
    from coder.cli.common import console

    store = open_store(db_path)
    try:
        infos = reviewers.list_reviewers(store)
    finally:
        store.close()
    if not infos:
        click.echo("No reviewers yet: add one with 'coder reviewers add NAME'.", err=True)
        return
    table = Table("reviewer", "token", "created", "last sign-in", "on item (since)")
    for info in infos:
        token = "working" if info.active else "revoked"
        if not info.created_at:
            token = "none (terminal)"
        items = ", ".join(f"{rid} ({since[11:19]})" for rid, since in info.on_items) or "-"
        table.add_row(
            plain(info.name),
            token,
            info.created_at[:19].replace("T", " "),
            (info.last_sign_in or "-")[:19].replace("T", " "),
            plain(items),
        )
    console.print(table)


@reviewers_group.command("revoke")
@click.argument("name")
@db_option
@handle_errors
def revoke(name: str, db_path: Path | None) -> None:
    """Stop NAME's token working; their decisions stay. A session they have open in
    'coder serve' ends within 10 seconds."""
    from coder import reviewers

    store = open_store(db_path)
    try:
        reviewers.revoke_reviewer(store, name)
    finally:
        store.close()
    click.echo(f"Revoked {name}'s token.", err=True)

"""``coder demo``: the whole loop, offline, on the illustrative demo responses."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rich.console import Console

from coder.codebook import builtin_codebook_path, load_codebook
from coder.importer import plan_import, run_import
from coder.store import Store


def demo_responses_path() -> Path:
    """Path of the bundled illustrative demo responses (CSV)."""
    return Path(str(resources.files("coder.data").joinpath("demo_responses.csv")))


def run_demo(db_path: Path, *, fresh: bool = True, console: Console | None = None) -> dict[str, int]:
    """Build a demo project at ``db_path`` and run every step that exists."""
    console = console or Console()
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    summary: dict[str, int] = {}
    with Store(db_path) as store:
        codebook = load_codebook(builtin_codebook_path())
        version = store.save_codebook(codebook, source="built-in example")
        console.print(
            f"[bold]1. Codebook[/]: {codebook.name!r}, version {version}: "
            f"{len(codebook.questions)} questions, {len(codebook.themes)} themes"
        )
        plan = plan_import(demo_responses_path(), codebook=codebook)
        added, skipped = run_import(store, plan)
        summary["responses"] = store.count_responses()
        console.print(
            f"[bold]2. Import[/]: {added} responses from the bundled demo file "
            f"(illustrative, written for the demo), {skipped} already present"
        )
        summary.update(_precode(store, console))
        summary.update(_report(store, db_path, console))
    console.print(
        "\n[bold]Next[/]: review the proposals at keyboard speed:\n"
        f"  coder review --db {db_path} --reviewer YOUR_NAME\n"
        f"  coder status --db {db_path}"
    )
    return summary


def _precode(store: Store, console: Console) -> dict[str, int]:
    from coder.backends import get_classifier
    from coder.precode import precode

    classifier = get_classifier("local", model_store=store)
    result = precode(store, classifier)
    console.print(
        f"[bold]3. Pre-code[/]: {result.proposed} proposals from the embedded offline model "
        f"({classifier.model}), {result.failed} failed"
    )
    return {"proposed": result.proposed, "failed": result.failed}


def _report(store: Store, db_path: Path, console: Console) -> dict[str, int]:
    from coder.report import write_reports

    out = db_path.parent / (db_path.stem + "-report")
    paths = write_reports(store, out)
    console.print("[bold]4. Report[/]: " + ", ".join(str(p) for p in paths))
    return {"reports": len(paths)}

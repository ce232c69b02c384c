"""Backends are plugins: a package that declares a ``coder.backends`` entry point is used
by ``coder precode --backend NAME`` without any change to coder.

The toy plugin is written to a temporary folder the way pip installs a package (the
module plus its ``.dist-info`` with ``entry_points.txt``) and put on the path of a real
``coder`` process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from coder.backends.registry import BUILT_IN, available_backends, load_backend
from coder.errors import BackendError

REPO = Path(__file__).resolve().parent.parent

TOY_MODULE = '''
"""A toy coder backend: proposes the question's first theme for every answer."""
from schemas import Proposal, ThemeAssignment
from coder.backends.base import ProposalResult


class ToyClassifier:
    backend = "toy"

    def __init__(self, model=None, **options):
        self.model = model or "toy-1"
        self.options = options

    def propose(self, responses, codebook):
        results = []
        for response in responses:
            theme = codebook.themes_for(response.question)[0]
            proposal = Proposal(
                response_id=response.id,
                question=response.question,
                themes=[ThemeAssignment(code=theme.id, evidence=response.text, confidence=0.5)],
                confidence=0.5,
                rationale="toy " + ",".join(f"{k}={v}" for k, v in sorted(self.options.items())),
            )
            results.append(
                ProposalResult(response.id, proposal, model_version="toy-" + self.model)
            )
        return results
'''

CODEBOOK = """
name: toy test
questions:
  - id: H1
    text: Clinical leaders drive adoption.
themes:
  - id: leadership
    label: Clinical leadership
    definition: A named clinical leader drives the change.
  - id: funding
    label: Funding
    definition: Money, budgets and business cases.
"""


def install_toy_plugin(folder: Path, name: str = "toy", target: str | None = None) -> Path:
    """Lay out a plugin as an installed distribution: module + dist-info."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "toy_coder_backend.py").write_text(TOY_MODULE)
    info = folder / "toy_coder_backend-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-coder-backend\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[coder.backends]\n{name} = {target or 'toy_coder_backend:ToyClassifier'}\n"
    )
    return folder


def coder(args: list[str], plugin_path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(plugin_path), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "coder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_built_ins_are_backends_like_any_other() -> None:
    found = available_backends()
    assert list(found)[:2] == ["local", "openai"]
    assert all(found[name].built_in for name in BUILT_IN)
    with pytest.raises(BackendError, match="unknown backend 'nope'.*local, openai"):
        load_backend("nope")


def test_a_plugin_package_adds_a_backend_end_to_end(tmp_path: Path) -> None:
    plugin = install_toy_plugin(tmp_path / "site")
    (tmp_path / "codebook.yaml").write_text(CODEBOOK)
    (tmp_path / "answers.csv").write_text(
        "id,question,text\n1,H1,Our lead GP pushed it through.\n2,H1,The money ran out.\n"
    )
    listed = coder(["backends", "--json"], plugin, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["toy"]["provider"] == "toy-coder-backend"

    db = str(tmp_path / "p.db")
    for args in (["codebook", "add", "codebook.yaml"], ["import", "answers.csv"]):
        done = coder([*args, "--db", db], plugin, tmp_path)
        assert done.returncode == 0, done.stderr
    done = coder(
        ["precode", "--db", db, "--backend", "toy", "-o", "flavour=mint"], plugin, tmp_path
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select backend, model, model_version, output from proposals").fetchall()
    assert len(rows) == 2
    for backend, model, version, output in rows:
        assert (backend, model, version) == ("toy", "toy-1", "toy-toy-1")
        assert json.loads(output)["rationale"] == "toy flavour=mint"


def test_without_the_plugin_the_name_is_refused_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = coder(["precode", "--db", str(tmp_path / "p.db"), "--backend", "toy"], empty, tmp_path)
    assert done.returncode == 2
    assert "'toy' is not a backend here" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_plugin_cannot_take_a_built_in_name(tmp_path: Path) -> None:
    plugin = install_toy_plugin(tmp_path / "site", name="local")
    done = coder(["backends", "--json"], plugin, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["local"]["target"] == BUILT_IN["local"]
    assert rows["local"]["provider"] == "coder"


def test_plugin_options_are_only_for_plugins(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    done = coder(
        ["precode", "--db", str(tmp_path / "p.db"), "--backend", "local", "-o", "x=1"],
        empty,
        tmp_path,
    )
    assert done.returncode == 1
    assert "-o/--option is for plugin backends" in done.stderr


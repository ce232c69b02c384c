"""``coder agree`` on long-format CSV and JSONL files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder.cli import cli

K2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _write_k2011_csv(path: Path) -> None:
    lines = ["rater,unit,value"]
    for coder, row in zip("ABCD", K2011, strict=True):
        for unit, value in enumerate(row, start=1):
            if value is not None:
                lines.append(f"{coder},u{unit},{value}")
    path.write_text("\n".join(lines) + "\n")


def test_agree_csv_reproduces_krippendorff_2011(tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    _write_k2011_csv(source)
    out = tmp_path / "agree.json"
    result = CliRunner().invoke(
        cli, ["agree", str(source), "--json-file", str(out), "--resamples", "200"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["n_coders"] == 4 and data["n_items"] == 12
    assert data["all"]["alpha_nominal"] == pytest.approx(0.743, abs=5e-4)
    assert len(data["pairs"]) == 6
    lo, hi = data["all"]["ci"]["alpha_nominal"]
    assert lo <= data["all"]["alpha_nominal"] <= hi
    assert "Agreement" in result.output

    ordinal = CliRunner().invoke(
        cli, ["agree", str(source), "--level", "ordinal", "--json-file", str(out), "--resamples", "0"]
    )
    assert ordinal.exit_code == 0, ordinal.output
    data = json.loads(out.read_text())
    assert data["all"]["alpha_ordinal"] == pytest.approx(0.815, abs=5e-4)
    assert "cohen_kappa_linear" in data["pairs"][0]


def test_agree_metric_and_categories(tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    # value 5 is never used: weights from observed levels differ from the full scale (pitfall 4)
    source.write_text(
        "coder,item,label\nA,1,1\nB,1,2\nA,2,2\nB,2,2\nA,3,3\nB,3,4\nA,4,6\nB,4,4\nA,5,6\nB,5,6\n"
    )
    out = tmp_path / "a.json"
    args = [
        "agree",
        str(source),
        "--metric",
        "cohen",
        "--level",
        "ordinal",
        "--json-file",
        str(out),
        "--resamples",
        "0",
    ]
    assert CliRunner().invoke(cli, args).exit_code == 0
    observed = json.loads(out.read_text())["pairs"][0]["cohen_kappa_linear"]
    assert CliRunner().invoke(cli, [*args, "--categories", "1,2,3,4,5,6"]).exit_code == 0
    full = json.loads(out.read_text())["pairs"][0]
    assert full["cohen_kappa_linear"] != pytest.approx(observed)
    assert "gwet_ac1" not in full


def test_agree_jsonl_multi_label_sets(tmp_path: Path) -> None:
    rows = [
        {"annotator": "F", "id": "u1", "codes": ["b", "d"]},
        {"annotator": "G", "id": "u1", "codes": "d"},
        {"annotator": "F", "id": "u2", "codes": "a;b;d"},
        {"annotator": "G", "id": "u2", "codes": ["b"]},
        {"annotator": "H", "id": "u2", "codes": '["b", "d"]'},
        {"annotator": "F", "id": "u3", "codes": []},
        {"annotator": "G", "id": "u3", "codes": ["a"]},
        {"annotator": "H", "id": "u3", "codes": ["a"]},
        {"annotator": "F", "id": "u4", "codes": ["a"]},
    ]
    source = tmp_path / "sets.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "sets.json"
    result = CliRunner().invoke(
        cli, ["agree", str(source), "--multi", "--json-file", str(out), "--resamples", "50"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["all"]["mv_alpha"] == pytest.approx(0.2866, abs=6e-4)
    assert {tuple(p["coders"]) for p in data["pairs"]} == {("F", "G"), ("F", "H"), ("G", "H")}


def test_agree_one_row_per_label(tmp_path: Path) -> None:
    source = tmp_path / "long.csv"
    source.write_text("coder,item,code\nA,1,x\nA,1,y\nB,1,x\nB,1,y\nA,2,x\nB,2,z\n")
    out = tmp_path / "o.json"
    result = CliRunner().invoke(
        cli, ["agree", str(source), "--multi", "--json-file", str(out), "--resamples", "0"]
    )
    assert result.exit_code == 0, result.output
    pair = json.loads(out.read_text())["pairs"][0]
    assert pair["exact_match"] == 0.5
    assert pair["jaccard"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("coder,item,label\nA,1,x\nA,1,y\nB,1,x\n", "row 3"),
        ("who,item,label\nA,1,x\n", "coder"),
        ("coder,item,label\nA,,x\nB,1,y\n", "row 2, field 'item'"),
        ("coder,item,label\nA,1,x\nA,2,y\n", "at least two coders"),
    ],
)
def test_agree_bad_input_is_a_clear_error(tmp_path: Path, content: str, message: str) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(content)
    result = CliRunner().invoke(cli, ["agree", str(source)])
    assert result.exit_code != 0
    assert message in result.output
    assert "bad.csv" in result.output
    assert "Traceback" not in result.output


def test_agree_bad_jsonl_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"coder": "A", "item": 1, "label": "x"}\n{not json\n')
    result = CliRunner().invoke(cli, ["agree", str(source)])
    assert result.exit_code == 1
    assert "bad.jsonl, line 2" in result.output


def test_agree_interval_needs_numbers(tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_text("coder,item,label\nA,1,high\nB,1,3\n")
    result = CliRunner().invoke(cli, ["agree", str(source), "--level", "interval"])
    assert result.exit_code == 1
    assert "needs numbers" in result.output

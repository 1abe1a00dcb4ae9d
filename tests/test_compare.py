import json

from s2kan_dyn.cli import main


def test_compare_sindy_writes_outputs(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["-q", "compare", "hopf", "--methods", "sindy", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| sindy |" in printed
    assert "terms found" in printed
    assert (out / "table.md").read_text().count("| sindy |") == 1
    assert "- sindy: `x' = " in (out / "table.md").read_text()
    assert "- truth: `y' = " in printed
    assert (out / "forecasts.png").stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert report["states"] == ["x", "y"]
    assert set(report["methods"]) == {"sindy"}
    assert set(report["methods"]["sindy"]["equations"]) == {"x", "y"}
    assert report["methods"]["sindy"]["metrics"]["exact"] is True
    from PIL import Image

    with Image.open(out / "forecasts.png") as image:
        assert image.text["Description"].startswith("sindy valid ")


def test_compare_series_file(tmp_path, capsys):
    import systems
    from s2kan_dyn.io import save_trajectories

    data = tmp_path / "lv.csv"
    save_trajectories(data, systems.get("lotka_volterra").simulate(t_end=20.0))
    out = tmp_path / "cmp"
    code = main(["-q", "compare", "--data", str(data), "--methods", "sindy", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["truth"] is None
    assert report["methods"]["sindy"]["metrics"]["vpt"] > 0
    assert "| sindy | 4 | - | - | - |" in capsys.readouterr().out


def test_compare_rejects_nonempty_out(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    code = main(["compare", "hopf", "--methods", "sindy", "--out", str(tmp_path)])
    assert code == 2
    assert "--force" in capsys.readouterr().err


def test_compare_unknown_method(tmp_path, capsys):
    code = main(["compare", "hopf", "--methods", "sindyy", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "did you mean 'sindy'" in capsys.readouterr().err.lower()


def test_compare_needs_name_or_data(tmp_path, capsys):
    code = main(["compare", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "either NAME" in capsys.readouterr().err


def test_compare_table_failed_method():
    from s2kan_dyn.cli.compare_cmd import comparison_table

    table = comparison_table({"s2kan": {"error": "no terms"}, "sindy": {"n_terms_found": 2, "f1": 1.0}}, True)
    lines = table.splitlines()
    assert lines[2].startswith("| s2kan | failed: no terms |")
    assert lines[2].count("|") == lines[0].count("|")
    assert lines[3].startswith("| sindy | 2 | 1 |")

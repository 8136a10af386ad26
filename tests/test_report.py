"""`python -m benchmark report`: the HTML page of a leaderboard, read as text and driven in
headless Chromium (skipped, with the reason, where Chromium or playwright is missing).

The board comes from a real smoke run made here (thresh and ae on the toy data), so the
volume browser has cached maps; its binarised images are checked voxel by voxel against
the tp / fp / fn counts of per_volume.csv.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.leaderboard import build_leaderboard
from benchmark.leaderboard.significance import SignificanceSettings
from benchmark.report import build_report
from benchmark.report.volumes import BINARY_PALETTE, BrowserOptions

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("UAD_BENCH_TEST_ARTEFACTS", REPO / "build" / "test-artefacts"))


@pytest.fixture(scope="module")
def smoke(toy_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["run", "--profile", "smoke", "--sequences", "t2", "--no-progress",
                 "--methods", "thresh,ae", "--cohorts", "Brats21", "--data-root",
                 str(toy_root), "--out", str(root), "--run-id", "r"]) == 0
    run = root / "r"
    build_leaderboard([run], root / "board", SignificanceSettings(unit="volume", rounds=200))
    html = build_report(root / "board", root / "report.html", runs=[run],
                        browser=BrowserOptions(volumes=2, slice_step=1))
    return run, root / "board", html


def markdown_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.splitlines()
            if line.startswith("| ") and not line.startswith("| Model")]


def html_rows(page: str, table_id: str) -> list[list[str]]:
    """The rows of one table of the page, cells written as the Markdown table writes them."""
    table = re.search(rf'<table class="sortable" id="{table_id}">(.*?)</table>', page, re.DOTALL)
    rows = []
    for tr in re.findall(r"<tbody>(.*)</tbody>", table.group(1), re.DOTALL)[0].split("<tr>")[1:]:
        cells = []
        for attrs, text in re.findall(r"<td([^>]*)>(.*?)</td>", tr, re.DOTALL):
            text = text.replace("&amp;", "&")
            star = text.endswith("*")
            text = text.rstrip("*")
            if 'class="best"' in attrs:
                text = f"**{text}**"
            cells.append(text + ("\\*" if star else ""))
        rows.append(cells)
    return rows


def decode(uri: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
        return np.asarray(im.convert("RGB"))


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script id="report-data" type="application/json">(.*?)'
                                r"</script>", page, re.DOTALL).group(1))


def test_tables_equal_the_markdown_tables_and_nothing_is_fetched(smoke):
    run, board, html = smoke
    page = html.read_text()
    for name in ("table1", "table2"):
        assert html_rows(page, name) == markdown_rows((board / f"{name}.md").read_text())
    # no request can leave the page: nothing but data URIs and anchors, and a CSP saying so
    assert re.findall(r'(?:src|href)="(?!data:|#)', page) == []
    assert "default-src 'none'" in page and "<link" not in page
    assert str(run) in page and "smoke" in page  # which runs, which profile
    protocol = json.loads((board / "inputs.json").read_text())["protocol"]
    assert protocol["protocol_version"] == ["1.0"] and "protocol_version" in page


def test_browser_images_show_what_was_scored(smoke):
    run, _, html = smoke
    data = page_data(html.read_text())["browser"]
    pv = pd.read_csv(run / "per_volume.csv")
    assert len(data) == 2 and {v["dataset"] for v in data} == {"Brats21"}
    colours = {name: np.array(rgb) for name, rgb in zip(("bg", "tp", "fp", "fn"), BINARY_PALETTE)}
    for vol in data:
        truth = sum(int((decode(u) == 255).all(-1).sum()) for u in vol["truth"])
        assert truth == vol["lesion_voxels"] > 0
        assert sorted(x["entry"] for x in vol["entries"]) == ["ae", "thresh [equalize=train]"]
        for entry in vol["entries"]:
            assert (entry["recon"] is None) == entry["entry"].startswith("thresh")
            for source, frames in entry["binary"].items():
                row = pv[(pv["method"] == entry["entry"].split(" [")[0]) & (pv["volume"] == vol["volume"])
                         & (pv["threshold_source"] == source)].iloc[0]
                images = np.stack([decode(u) for u in frames])
                counts = {k: int((images == c).all(-1).sum()) for k, c in colours.items()}
                assert (counts["tp"], counts["fp"], counts["fn"]) == \
                    (row["tp"], row["fp"], row["fn"]), (entry["entry"], source)
                assert entry["thresholds"][source] == pytest.approx(row["threshold"])


def test_board_without_maps_or_strata_says_why(tmp_path):
    out = build_report(REPO / "leaderboard" / "synthetic-quick", tmp_path / "r.html")
    page = out.read_text()
    published = (REPO / "leaderboard" / "synthetic-quick" / "table2.md").read_text()
    assert html_rows(page, "table2") == markdown_rows(published)
    assert "No volume browser" in page and "not on this machine" in page
    assert "No stratified results" in page
    assert page_data(page)["browser"] == []
    assert main(["report", str(tmp_path / "nope")]) == 2


def test_stratified_tables_in_the_report(tmp_path):
    from test_strata import planted_run

    run = planted_run(tmp_path / "run")
    build_leaderboard([run], tmp_path / "board", SignificanceSettings(unit="volume", rounds=200))
    assert main(["report", str(tmp_path / "board")]) == 0  # default: beside the board
    page = (tmp_path / "board" / "report.html").read_text()
    rows = {r[0]: r[1:] for r in html_rows(page, "strata-0")}  # Planted by lesion size
    # columns: small AUPRC, Dice, detected; large AUPRC, Dice, detected
    assert rows["large_only"][2] == "0.00 ± 0.00"  # small bin: none of its lesions
    assert rows["large_only"][5] == rows["finds_all"][5] == "**100.00 ± 0.00**"  # tie: both bold
    # best and `*`: per fold, two folds (1, 1) vs (0, 0) cannot be significant (p = 1/3),
    # so the pooled rate's asterisk comes from the same rate per volume, paired: finds_all
    # detects the small lesions of every volume, large_only of none
    assert rows["finds_all"][2] == "**100.00 ± 0.00**\\*"
    sig = pd.read_csv(tmp_path / "board" / "stratified_significance.csv", keep_default_na=False)
    small = sig[(sig["stratum"] == "small") & (sig["stratify_by"] == "lesion_size")]
    per_fold = small[small["metric"] == "detection_rate_pooled"]
    assert per_fold["unit"].tolist() == ["fold"] and float(per_fold["p_value"].iloc[0]) > 0.3
    per_volume = small[small["metric"] == "detection_rate"]
    assert per_volume["unit"].tolist() == ["volume"] and per_volume["better"].tolist() == ["finds_all"]
    assert "strata_Planted_lesion_size" in page and "detection_Planted" in page
    assert "no cached maps" in page


def test_page_in_headless_chromium(smoke):
    from benchmark.report.screenshot import headless_chromium

    _, _, html = smoke
    try:
        browser = headless_chromium()
        context = browser.__enter__()
    except RuntimeError as err:
        pytest.skip(f"no headless Chromium: {err}")
    try:
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(html.resolve().as_uri())

        # sorting: click a numeric column, rows follow its values (descending, then ascending)
        def column(j):
            return page.eval_on_selector_all(
                "#table2 tbody tr",
                f"rows => rows.map(r => [r.cells[0].textContent, r.cells[{j}]"
                ".getAttribute('data-value')])")
        j = next(j for j in (1, 2) if len({v for _, v in column(j)}) > 1)
        values = {e: float(v) for e, v in column(j)}
        assert len(values) == 2, values
        page.click(f"#table2 thead th:nth-child({j + 1})")
        desc = [e for e, _ in column(j)]
        assert desc == sorted(values, key=values.get, reverse=True)
        page.click(f"#table2 thead th:nth-child({j + 1})")
        assert [e for e, _ in column(j)] == desc[::-1]

        # the slice slider changes the slice shown
        data = page.evaluate("JSON.parse(document.getElementById('report-data').textContent)")
        vol = data["browser"][0]
        shown = '.browser-volume[data-volume="0"] img[data-layer="input"]'
        assert page.get_attribute(shown, "src") == vol["input"][vol["start"]]
        k = 0 if vol["start"] else len(vol["slices"]) - 1
        page.eval_on_selector("#slice-slider", f"s => {{ s.value = '{k}'; "
                              "s.dispatchEvent(new Event('input')); }")
        assert page.get_attribute(shown, "src") == vol["input"][k] != vol["input"][vol["start"]]
        assert f"axial slice {vol['slices'][k]}" in page.inner_text("#slice-label")
        page.locator("#browser").scroll_into_view_if_needed()
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "report-browser.png"))
        assert (ARTEFACTS / "report-browser.png").stat().st_size > 0
        assert errors == []
    finally:
        browser.__exit__(None, None, None)

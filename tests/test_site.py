"""The static leaderboard site in a real browser (headless Chromium via selenium, from file://):
no console errors, sortable tables, plots that draw, thumbnails that load, recipe pages that
say what the run store lacks. Screenshots go to $SMALLCOMP_ARTIFACTS (else a tmp dir)."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_TRACK, with_world_boxes

from benchmark import curate as curation
from benchmark import leaderboard, site
from benchmark.cli import main
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.pipeline import Runner
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import load_track
from benchmark.spec.recipe import Step
from benchmark.store import Store, digest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y --no-install-recommends chromium chromium-driver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1000",
]


def test_pareto_front():
    points = [(0.0, 50.0), (1.0, 49.0), (2.0, 60.0), (2.0, 55.0), (10.0, 61.0), (5.0, 58.0)]
    assert site.pareto(points) == [0, 2, 4]


# -- a small real leaderboard ----------------------------------------------------------------
def _write_recipe(root: Path, name: str, body: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(f"name: {name}\ntrack: {TEST_TRACK}\n{body}")
    return path


def _counterfactual_stage(runs: Path) -> tuple[curation.Curated, Path]:
    """A real curate stage of filter -> inpaint -> edit_caption -> quality_check on the test
    track's pool, with the world's boxes as the detector (the test track trains none), and
    each filter step's record naming a few of the uids it removed."""
    track = load_track(TEST_TRACK)
    table = Runner(Store(runs)).track_pool(track)
    table = with_world_boxes(table)
    plan = [
        ("caption_length", {"min_words": 2, "min_chars": 5}),
        ("inpaint", {"backend": "classical", "dilate": 0}),
        ("edit_caption", {"vocabulary": "shapes", "fallback": "drop"}),
        ("quality_check", {"detector": False, "clip": False}),
    ]
    steps = [
        Step(op=op, params=registry.get(op).params.model_validate(p).model_dump(mode="json"))
        for op, p in plan
    ]
    stage = runs / "curate" / digest({"test_site": "counterfactual"})
    stage.mkdir(parents=True)

    def context(i: int, step: Step) -> StepContext:
        return StepContext(
            f"steps[{i}] ({step.op})", ShardReader(runs), i, stage / f"step{i}", store_root=runs
        )

    result = curation.curate(table, steps, context)
    curation.write(result, stage)
    report = {
        "pool_rows": table.num_rows,
        "curated_rows": result.table.num_rows,
        "uid_hash": result.uid_hash,
        "steps": result.steps,
        "wall_s": 1.0,
    }
    (stage / "report.json").write_text(json.dumps(report))
    return result, stage


def _derived(result: dict, name: str, recipe_file: Path, report: dict, gain: float) -> dict:
    """``result`` as if recipe ``name`` had curated ``report``'s set and scored ``gain`` more
    (training it too would double the test's time; the site only reads these fields)."""
    r = copy.deepcopy(result)
    r.update(recipe=name, recipe_hash=digest(name), recipe_file=str(recipe_file))
    r["headline"] = {t: min(1.0, v + gain) for t, v in result["headline"].items()}
    r["curated"] = {
        "size": report["curated_rows"],
        "pool_size": report["pool_rows"],
        "uid_hash": report["uid_hash"],
    }
    r["costs"] = {"curation_wall_s": 1.0, "steps": report["steps"]}
    return r


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    return build_site(tmp_path_factory.mktemp("site"))


def build_site(root: Path) -> dict:
    """Real no_filter runs (2 seeds), a real curate stage of basic and of a counterfactual
    chain, results for those two derived from no_filter's, and an older suite version's."""
    runs, board, out = root / "runs", root / "lb", root / "site"
    plain = _write_recipe(root, "no_filter", "steps:\n  - op: no_filter\n")
    basic = _write_recipe(
        root, "basic", "steps:\n  - op: language\n  - op: caption_length\n    min_words: 2\n"
    )
    run = ["--runs", str(runs), "run", str(plain), "--scale", "micro", "--seeds", "0,1"]
    assert main([*run, "--leaderboard", str(board)]) == 0
    assert main(["--runs", str(runs), "curate", str(basic)]) == 0
    reports = [json.loads(p.read_text()) for p in runs.glob("curate/*/report.json")]
    (basic_report,) = [
        r for r in reports if [s["op"] for s in r["steps"]] == ["language", "caption_length"]
    ]
    cf, _ = _counterfactual_stage(runs)
    cf_report = {
        "curated_rows": cf.table.num_rows,
        "pool_rows": 600,
        "uid_hash": cf.uid_hash,
        "steps": cf.steps,
    }
    cf_file = _write_recipe(root, "counterfactual_mini", "steps: []  # see test_site.py\n")
    for r in leaderboard.load_results(board):
        b = _derived(r, "basic", basic, basic_report, 0.05)
        leaderboard.save_result(board, b)
        leaderboard.save_result(board, _derived(r, "counterfactual_mini", cf_file, cf_report, 0.1))
        # basic scored by an older suite version, curated where this store never was
        old = copy.deepcopy(b)
        old.update(suite_version="0")
        old["curated"]["uid_hash"] = "f" * 64
        path = board / "results" / r["track"] / r["scale"] / f"old-{r['seed']}.json"
        path.write_text(json.dumps(old))
    site_args = ["leaderboard", "--leaderboard", str(board), "--site", str(out)]
    assert main(["--runs", str(runs), *site_args]) == 0
    return {"root": root, "runs": runs, "board": board, "site": out}


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"headless Chromium is needed for the site tests ({', '.join(missing)} missing): "
            f"install it with `{INSTALL}` (Debian), then pip install -e '.[dev]' for selenium"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: pip install -e '.[dev]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory()
    options.add_argument(f"--user-data-dir={profile.name}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the local driver: selenium must not look for (or download) one
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    path = Path(os.environ.get("SMALLCOMP_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    path = path / "site"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open(driver, page: Path) -> None:
    driver.set_window_size(1400, 1000)
    driver.get(page.resolve().as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], f"{page.name}: console errors {errors}"


def _screenshot(driver, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(height + 200, 12000))
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)


def _column(driver, table, index: int, attr: str = "data-sort") -> list[str]:
    return driver.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).map(r => r.cells[arguments[1]])"
        ".map(c => c.getAttribute(arguments[2]) ?? c.textContent)",
        table,
        index,
        attr,
    )


def _drawn(element) -> float:
    """Fraction of the element's screenshot pixels that are not background white."""
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("L"))
    return float((im < 235).mean())


@pytest.mark.slow
def test_site_is_self_contained(built):
    pages = list(built["site"].rglob("*.html"))
    assert len(pages) == 4  # the index and one page per recipe version
    for p in pages:
        text = p.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), p
        assert "<script src" not in text and "<link" not in text
    thumbs = list((built["site"] / "img").iterdir())
    assert thumbs and all(p.stat().st_size < 8_000 for p in thumbs)


@pytest.mark.slow
def test_index_sorts_and_plots(built, browser, artifacts):
    from selenium.webdriver.common.by import By

    index = built["site"] / "index.html"
    _open(browser, index)
    _screenshot(browser, artifacts / "index.png")
    table = browser.find_element(By.ID, "table-shapes-test-micro-v1")
    heads = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    recipe, average = heads.index("recipe"), heads.index("average")
    ranked = _column(browser, table, recipe)
    assert sorted(ranked) == ["basic", "counterfactual_mini", "no_filter"]
    assert ranked[0] == "counterfactual_mini"  # its scores are basic's + 10 points
    table.find_elements(By.CSS_SELECTOR, "thead th")[recipe].click()
    assert _column(browser, table, recipe) == sorted(ranked) != ranked
    th = table.find_elements(By.CSS_SELECTOR, "thead th")[average]
    th.click()  # numbers sort high to low first, by the mean (not the cell's text)
    means = [float(v) for v in _column(browser, table, average)]
    assert means == sorted(means, reverse=True)
    assert th.get_attribute("aria-sort") == "descending"
    th.click()
    assert [float(v) for v in _column(browser, table, average)] == sorted(means)
    assert _column(browser, table, recipe) != ranked
    # every other recipe's score names its difference to no_filter
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        if cells[recipe].get_attribute("data-sort") != "no_filter":
            assert "vs no_filter: +" in cells[average].get_attribute("title")
    # the older suite version has its own table, below the current one
    old = browser.find_element(By.ID, "table-shapes-test-micro-v0")
    assert old.location["y"] > table.location["y"]
    assert "Older suite versions" in browser.find_element(By.TAG_NAME, "body").text
    plots = browser.find_elements(By.CSS_SELECTOR, "figure.plot svg")
    assert len(plots) == 6  # three per table
    for i, svg in enumerate(plots):
        browser.execute_script("arguments[0].scrollIntoView()", svg)
        assert svg.size["width"] > 300 and svg.size["height"] > 100
        assert _drawn(svg) > 0.01, f"plot {i} is blank"
        (artifacts / f"plot{i}.png").write_bytes(svg.screenshot_as_png)


def _images(driver) -> list[list]:
    return driver.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, "
        "i.naturalWidth])"
    )


@pytest.mark.slow
def test_recipe_pages_show_steps_and_samples(built, browser, artifacts):
    from selenium.webdriver.common.by import By

    pages = built["site"] / "recipes" / "shapes-test"
    cf = next(pages.glob("counterfactual_mini-*.html"))
    _open(browser, cf)
    _screenshot(browser, artifacts / "recipe_counterfactual.png")
    images = _images(browser)
    assert len(images) > 10
    assert all(done and width > 0 for _, done, width in images), images
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "steps: []  # see test_site.py" in body  # the recipe file, as it is
    assert "samples from the uids its record names" in body
    # the filter step's removals, labelled by the pool's hidden defects, and edit pairs
    removed = browser.find_elements(
        By.XPATH,
        "//h3[contains(., 'caption_length')]/following::div[1]//div[contains(@class,'card')]",
    )
    assert 0 < len(removed) <= site.PER_STEP
    pairs = browser.find_elements(By.CSS_SELECTOR, ".card.pair")
    assert 0 < len(pairs) <= site.PER_STEP
    first = pairs[0].text
    assert "before" in first and "after" in first and "removed:" in first
    steps = browser.find_elements(
        By.XPATH, "//h2[starts-with(., 'Steps')]/following::table[1]//tbody/tr"
    )
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in steps] == [
        "caption_length",
        "inpaint",
        "edit_caption",
        "quality_check",
    ]
    assert "precision" in browser.page_source and "vague" in steps[0].text  # recall by defect

    basic = next(pages.glob("basic-*.html"))
    _open(browser, basic)
    _screenshot(browser, artifacts / "recipe_basic.png")
    images = _images(browser)
    assert images and all(done and width > 0 for _, done, width in images), images
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "samples from the uids its record names" in body
    # the older suite's results were curated elsewhere: said, not failed
    assert "has no curate stage with this result's curated uid hash" in body

    # without a run store every page says so
    bare = built["root"] / "bare"
    site.build(built["board"], bare, runs=built["root"] / "no-such-store")
    _open(browser, next((bare / "recipes" / "shapes-test").glob("basic-*.html")))
    assert "No run store at" in browser.find_element(By.TAG_NAME, "body").text
    assert _images(browser) == []

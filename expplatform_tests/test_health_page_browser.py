"""The health pages in a real browser: headless Chromium, driven by Playwright, over the page server.

The hand-made serving copy of health_page_support.py is rendered with
write_health_pages, served by expplatform.health.server on a free port of 127.0.0.1,
and opened in the system's Chromium (Debian's `chromium`; `playwright install` cannot
download browsers here). For each page: no console error, no request leaves the page's
own origin, the banner shows the expected status and p-value, every chart has drawn
its marks (counted in the SVG, data read back from the chart), the per-tier table has
the expected rows. A full-page screenshot is written under the test's temporary folder
and its path printed.

This test never skips: without Chromium it FAILS, saying how to install it. `.ci/run`
installs it on CI.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from expplatform.health import write_health_pages
from expplatform.health.server import make_server
from expplatform_tests import health_page_support as fx

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM_ENV = "EXPPLATFORM_CHROMIUM_PATH"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
NO_CHROMIUM = f"""
================================================================================
 The health page browser test needs Chromium, and none was found
 (looked at ${CHROMIUM_ENV}, `chromium` and `chromium-browser` on PATH, /usr/bin/chromium).
 Install it (Debian/Ubuntu, as root):     apt-get install -y chromium
 or point {CHROMIUM_ENV} at a Chromium/Chrome binary.
 `.ci/run` installs it on CI. This test is never skipped: it fails until Chromium is there.
================================================================================
"""
NO_PLAYWRIGHT = """
================================================================================
 The health page browser test needs the `playwright` Python package (the dev extra):
     .venv/bin/pip install -e '.[dev]'
 (No browser download is needed: the test drives the system's Chromium.)
================================================================================
"""

GREEN, AMBER, RED = "rgb(46, 125, 50)", "rgb(249, 168, 37)", "rgb(198, 40, 40)"
D1, D2, D3, D4 = ("2025-12-01", "2025-12-02", "2025-12-03", "2025-12-04")

# Per chart, in the page's SVG: lines drawn, markers drawn, bars with a non-zero area.
MARKS_JS = """
(id) => {
  const div = document.getElementById(id);
  const visible = (el) => { const b = el.getBBox(); return b.width > 0 && b.height > 0; };
  const all = (sel) => Array.from(div.querySelectorAll(sel));
  return {
    lines: all('.scatterlayer path.js-line').filter(p => (p.getAttribute('d') || '').length > 4).length,
    markers: all('.scatterlayer path.point').filter(visible).length,
    bars: all('.barlayer path').filter(visible).map(p => ({
      subplot: p.closest('g.subplot').getAttribute('class'), fill: p.style.fill })),
    line_subplots: [...new Set(all('.scatterlayer path.js-line').map(
      p => p.closest('g.subplot').getAttribute('class')))],
    traces: div.data.map(t => ({name: t.name, type: t.type, x: Array.from(t.x || []),
                                y: Array.from(t.y || []), color: (t.marker || {}).color})),
  };
}
"""
TABLE_JS = """
(selector) => Array.from(document.querySelectorAll(selector + ' tbody tr')).map(
  tr => Array.from(tr.querySelectorAll('td')).map(td => td.innerText.trim()))
"""


def _executable(path: str | None) -> bool:
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def find_chromium() -> str:
    """The Chromium binary to drive, or a loud failure saying how to install one."""
    chosen = os.environ.get(CHROMIUM_ENV)
    if chosen:
        if not _executable(chosen):
            pytest.fail(f"{CHROMIUM_ENV}={chosen!r} is not an executable file", pytrace=False)
        return chosen
    for candidate in (
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if _executable(candidate):
            return candidate
    pytest.fail(NO_CHROMIUM, pytrace=False)


def test_without_chromium_the_test_fails_loudly(monkeypatch):
    """No browser is a failure with the install command, never a skip."""
    monkeypatch.delenv(CHROMIUM_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os.path, "isfile", lambda path: False)
    with pytest.raises(pytest.fail.Exception) as info:
        find_chromium()
    assert "apt-get install -y chromium" in str(info.value)
    monkeypatch.setenv(CHROMIUM_ENV, "/nowhere/chrome")
    with pytest.raises(pytest.fail.Exception, match="is not an executable file"):
        find_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    """The fixture's pages written and served on a free port of 127.0.0.1; yields the base URL."""
    tmp = tmp_path_factory.mktemp("health_site")
    serving = fx.build_serving_db(tmp / "serving.duckdb")
    pages = tmp / "pages"
    write_health_pages(serving, pages)
    server = make_server(pages, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(NO_PLAYWRIGHT, pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Visit:
    """One page opened in a fresh context, recording console errors and foreign requests."""

    def __init__(self, browser, site: str, path: str, charts: int | None) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.on(
            "console",
            lambda m: (
                self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

        def route(r) -> None:
            if r.request.url.startswith(site + "/"):
                r.continue_()
            else:  # the page must work with nothing but its own file: block and remember
                self.foreign.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)
        self.page.goto(site + path)
        if charts is not None:
            self.page.wait_for_selector(f'body[data-charts-drawn="{charts}"]', timeout=30_000)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()

    def marks(self, chart_id: str) -> dict:
        return self.page.evaluate(MARKS_JS, chart_id)

    def table(self, selector: str) -> list[list[str]]:
        return self.page.evaluate(TABLE_JS, selector)

    def screenshot(self, path: Path, capsys) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        with capsys.disabled():
            print(f"\nscreenshot: {path}")
        return path

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.foreign == [], self.foreign

    def close(self) -> None:
        self.context.close()


def test_unhealthy_two_arm_page(browser, site, tmp_path: Path, capsys):
    visit = Visit(browser, site, "/experiments/vault-launch.html", charts=4)
    try:
        # the banner: the latest day (12-04) is unhealthy, p from 110 vs 200 against 50/50
        assert visit.page.get_attribute("#srm-banner", "data-status") == "unhealthy"
        assert visit.text("#srm-status") == "Unhealthy"
        assert visit.text("#srm-p-value") == "3.19 × 10⁻⁷"
        assert visit.text("#srm-chi-square") == "26.13"
        assert visit.text("#srm-dof") == "1"
        assert visit.table("#srm-arms") == [
            ["control", "110", "35.48%", "50.00%", "−14.52 pp"],
            ["treatment", "200", "64.52%", "50.00%", "+14.52 pp"],
        ]
        assert "2 users seen in several variations and 3 users assigned to an unregistered" in (
            visit.text("#srm-left-out")
        )
        assert visit.text("#build-info") == (
            "Data through 2025-12-04, built at 2025-12-05 06:12:34 UTC (run run-0001)"
        )

        # cumulative users: one line and 4 markers per variation, the unregistered one included
        marks = visit.marks("chart-cumulative")
        assert (marks["lines"], marks["markers"]) == (3, 12)
        assert [(t["name"], t["y"]) for t in marks["traces"]] == [
            ("control", [40, 80, 100, 110]),
            ("treatment", [40, 122, 182, 202]),
            ("legacy-default (unregistered)", [0, 0, 3, 3]),
        ]
        # new users per day: 4 + 4 bars, and the unregistered variation's one non-zero day
        marks = visit.marks("chart-daily-new")
        assert len(marks["bars"]) == 9
        assert [t["y"] for t in marks["traces"]] == [
            [40, 40, 20, 10],
            [40, 82, 60, 20],
            [0, 0, 3, 0],
        ]

        # share vs expected: 2 observed + 2 expected lines in the top plot; the status strip
        # (one bar a day, coloured by status) in its own subplot below, not over the lines
        marks = visit.marks("chart-share")
        assert marks["lines"] == 4 and marks["line_subplots"] == ["subplot xy"]
        assert sorted(b["fill"] for b in marks["bars"]) == sorted([GREEN, AMBER, RED, RED])
        assert {b["subplot"] for b in marks["bars"]} == {"subplot x2y2"}
        observed = {t["name"]: t["y"] for t in marks["traces"] if t["type"] == "scatter"}
        assert [round(v, 4) for v in observed["control observed"]] == [
            0.5, 0.4, round(100 / 280, 4), round(110 / 310, 4),
        ]  # fmt: skip
        assert observed["treatment expected 50.00%"] == [0.5] * 4
        strip = {x: t["color"] for t in marks["traces"] if t["type"] == "bar" for x in t["x"]}
        assert strip == {D1: "#2e7d32", D2: "#f9a825", D3: "#c62828", D4: "#c62828"}

        # per tier: status per tier and day, 2 tiers x 4 days
        marks = visit.marks("chart-tier-status")
        assert marks["markers"] == 8
        assert visit.table("#tier-table") == [
            ["standard", "265", "260", "32.69% (85)", "67.31% (175)", "31.15", "2.38 × 10⁻⁸",
             "4.77 × 10⁻⁸", "Unhealthy"],
            ["premium", "50", "50", "50.00% (25)", "50.00% (25)", "0.00", "1.00", "1.00",
             "Healthy"],
        ]  # fmt: skip

        # data quality: the failed check is named
        assert visit.text("#dq-summary") == (
            "1 of 3 checks failed (1 ERROR) at their latest evaluation."
        )
        failed = visit.table("#failed-checks")
        assert [row[:5] for row in failed] == [
            ["failed", "ERROR", "srm_overall", "marts/mart_experiment_health_daily", "2025-12-04"]
        ]
        shot = visit.screenshot(tmp_path / "vault-launch.png", capsys)
        assert shot.stat().st_size > 50_000
        visit.assert_clean()
    finally:
        visit.close()


def test_three_arm_page(browser, site, tmp_path: Path, capsys):
    visit = Visit(browser, site, "/experiments/vault-pricing.html", charts=4)
    try:
        assert visit.text("#srm-status") == "Healthy"
        assert visit.text("#srm-p-value") == "0.742"
        assert visit.text("#srm-chi-square") == "0.60"
        assert visit.text("#srm-dof") == "2"
        # weights 0.34/0.33/0.33; users 350/320/330 of 1000
        assert visit.table("#srm-arms") == [
            ["control", "350", "35.00%", "34.00%", "+1.00 pp"],
            ["low-fee", "320", "32.00%", "33.00%", "−1.00 pp"],
            ["no-fee", "330", "33.00%", "33.00%", "0.00 pp"],
        ]
        marks = visit.marks("chart-cumulative")
        assert (marks["lines"], marks["markers"]) == (3, 6)
        marks = visit.marks("chart-share")
        assert marks["lines"] == 6  # 3 observed, 3 expected
        # 12-03 had too little traffic (grey), 12-04 is healthy (green)
        assert sorted(b["fill"] for b in marks["bars"]) == sorted(["rgb(158, 158, 158)", GREEN])
        assert (
            visit.marks("chart-daily-new")["bars"]
            and visit.marks("chart-tier-status")["markers"] == 3
        )
        # unknown: p 0.00546 alone would be a warning; x2 tiers = 0.0109 is healthy
        assert visit.table("#tier-table") == [
            ["plus", "910", "910", "33.52% (305)", "32.86% (299)", "33.63% (306)", "0.18",
             "0.916", "1.00", "Healthy"],
            ["unknown", "90", "90", "50.00% (45)", "23.33% (21)", "26.67% (24)", "10.42",
             "0.00546", "0.0109", "Healthy"],
        ]  # fmt: skip
        visit.screenshot(tmp_path / "vault-pricing.png", capsys)
        visit.assert_clean()
    finally:
        visit.close()


def test_index_lists_experiments_and_links_to_their_pages(browser, site, tmp_path: Path, capsys):
    visit = Visit(browser, site, "/", charts=None)
    try:
        rows = visit.table("#experiments")
        assert [row[:5] for row in rows] == [
            ["vault-launch", "Unhealthy", "3.19 × 10⁻⁷", "315", "2025-12-04"],
            ["vault-pricing", "Healthy", "0.742", "1,000", "2025-12-04"],
            ["vault-referral", "No data", "—", "0", "—"],
        ]
        visit.screenshot(tmp_path / "index.png", capsys)
        visit.page.click("text=vault-launch")
        visit.page.wait_for_selector('body[data-charts-drawn="4"]', timeout=30_000)
        assert visit.page.url == site + "/experiments/vault-launch.html"
        visit.page.click("text=← all experiments")
        visit.page.wait_for_selector("#experiments")
        # the page without traffic renders without charts and without errors
        visit.page.click("text=vault-referral")
        visit.page.wait_for_selector('body[data-charts-drawn="0"]', timeout=30_000)
        assert visit.text("#srm-status") == "No data"
        visit.assert_clean()
    finally:
        visit.close()

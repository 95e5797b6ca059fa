"""The experiment health pages without a browser: numbers, formatting, files, server, CLI.

Every expected value is written here from the hand-made fixture
(expplatform_tests/health_page_support.py): shares are the counts divided by hand,
p-values are checked against math.erfc / exp (independent of scipy and of the code
under test). The browser test is test_health_page_browser.py.
"""

from __future__ import annotations

import math
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest

from expplatform.health import (
    ServingCopyError,
    load_snapshot,
    page_filename,
    render_health_page,
    write_health_pages,
)
from expplatform.health.__main__ import main as health_main
from expplatform.health.formatting import (
    arm_shares,
    degrees_of_freedom,
    format_chi_square,
    format_p_value,
    format_points,
    format_share,
    format_significant,
)
from expplatform.health.server import make_server, pages_port_from_env
from expplatform_tests import health_page_support as fx


@pytest.fixture
def serving(tmp_path: Path) -> Path:
    return fx.build_serving_db(tmp_path / "serving.duckdb")


# --- formatting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.00"),
        (0.5, "0.500"),
        (0.7418753995544276, "0.742"),
        (0.004677734981047276, "0.00468"),
        (0.0109, "0.0109"),
        (0.001, "0.00100"),
        (0.0009996, "0.00100"),  # rounds up to 0.00100, stays in plain notation
        (0.00099949, "9.99 × 10⁻⁴"),
        (3.193460942794827e-07, "3.19 × 10⁻⁷"),
        (1.7449962508738087e-06, "1.74 × 10⁻⁶"),
        (2.5e-120, "2.50 × 10⁻¹²⁰"),
        (0.0, "< 10⁻³⁰⁰"),  # an underflowed p is tiny, not exactly zero
        (None, "—"),
        (float("nan"), "—"),
    ],
)
def test_p_value_has_three_significant_digits(value, text):
    assert format_p_value(value) == text


def test_significant_digits_of_larger_numbers():
    assert format_significant(12345.6) == "12300"
    assert format_significant(99.96) == "100"
    assert format_significant(26.129) == "26.1"
    assert format_significant(-0.123) == "−0.123"
    assert format_significant(0.0) == "0"
    assert format_significant(1.23456e9) == "1.23 × 10⁹"
    with pytest.raises(ValueError, match="digits"):
        format_significant(1.0, 0)


def test_chi_square_share_and_points():
    assert format_chi_square(26.129032258064516) == "26.13"
    assert format_chi_square(12345.678) == "12,345.68"
    assert format_chi_square(None) == "—"
    assert format_share(110 / 310) == "35.48%"
    assert format_share(None) == "—"
    assert format_points(110 / 310 - 0.5) == "−14.52 pp"
    assert format_points(0.35 - 0.34) == "+1.00 pp"
    assert format_points(0.33 - 0.33) == "0.00 pp"
    assert format_points(-0.00004) == "0.00 pp"  # rounds to zero: no "−0.00"


def test_arm_shares_normalise_weights_and_count_missing_arms_as_zero():
    shares = arm_shares({"control": 350, "low-fee": 320, "no-fee": 330, "ghost": 99},
                        [("control", 0.34), ("low-fee", 0.33), ("no-fee", 0.33)])  # fmt: skip
    assert [s.arm for s in shares] == ["control", "low-fee", "no-fee"]  # unregistered not an arm
    assert [s.users for s in shares] == [350, 320, 330]
    assert [round(s.observed_share, 10) for s in shares] == [0.35, 0.32, 0.33]
    assert [round(s.expected_share, 10) for s in shares] == [0.34, 0.33, 0.33]
    assert [round(s.difference, 10) for s in shares] == [0.01, -0.01, 0.0]
    # weights 1:1:2 (not summing to 1) are normalised; an arm with no user counts 0
    shares = arm_shares({"a": 10}, [("a", 1.0), ("b", 1.0), ("c", 2.0)])
    assert [s.expected_share for s in shares] == [0.25, 0.25, 0.5]
    assert [s.observed_share for s in shares] == [1.0, 0.0, 0.0]
    # no user in the test: no observed share at all
    assert arm_shares({}, [("a", 1.0), ("b", 1.0)])[0].observed_share is None
    with pytest.raises(ValueError, match="positive"):
        arm_shares({}, [("a", 0.0)])


def test_degrees_of_freedom_are_registered_arms_minus_one():
    assert degrees_of_freedom(2) == 1
    assert degrees_of_freedom(3) == 2
    assert degrees_of_freedom(1) is None


def test_page_filenames_are_safe_and_distinct():
    assert page_filename("vault-launch") == "vault-launch.html"
    odd = page_filename("a/b c")
    assert re.fullmatch(r"a_b_c-[0-9a-f]{8}\.html", odd)
    assert odd != page_filename("a_b_c") and odd != page_filename("a/b_c")
    assert not page_filename("../x").startswith(".")


# --- the fixture is what its comments say -----------------------------------------------------


def test_fixture_statistics_match_an_independent_calculation():
    # 1 degree of freedom: p = erfc(sqrt(chi/2)); 2 degrees: p = exp(-chi/2)
    chi, p = fx.srm("vault-launch", (110, 200))
    assert chi == pytest.approx(2 * 45**2 / 155)
    assert p == pytest.approx(math.erfc(math.sqrt(chi / 2)), rel=1e-9)
    assert f"{p:.2e}" == "3.19e-07"
    chi, p = fx.srm("vault-pricing", (350, 320, 330))
    assert chi == pytest.approx(10**2 / 340 + 10**2 / 330 + 0)
    assert p == pytest.approx(math.exp(-chi / 2), rel=1e-9)
    assert f"{p:.3f}" == "0.742"
    # every hand-written status follows the contract's rules on scipy's p-values
    for experiment, _, _, _, users, status in fx.HEALTH_DAYS:
        assert status == contract_status(experiment, users, 1), (experiment, users)
    for experiment, _, _, _, users, present, status in fx.TIER_DAYS:
        assert status == contract_status(experiment, users, present), (experiment, users)


def contract_status(experiment: str, users: tuple[int, ...], tests: int) -> str:
    """DATA_CONTRACT §5's status of `users`, p Bonferroni-corrected over `tests`."""
    if min(users) < 8:
        return "not_enough_traffic"
    _, p = fx.srm(experiment, users)
    p = min(1.0, p * tests)
    weights = fx.weights(experiment)
    off = max(abs(u / sum(users) - w / sum(weights)) for u, w in zip(users, weights, strict=True))
    if p < 0.001 and off >= 0.001:
        return "unhealthy"
    return "warning" if p < 0.01 else "healthy"


# --- what is read from the serving copy --------------------------------------------------------


def test_snapshot_numbers(serving):
    snap = load_snapshot(serving)
    assert sorted(snap.experiments) == ["vault-launch", "vault-pricing", "vault-referral"]
    assert (str(snap.build.data_through), snap.build.run_id) == ("2025-12-04", "run-0001")
    launch = snap.experiments["vault-launch"]
    assert [a.name for a in launch.arms] == ["control", "treatment"]
    assert [str(d) for d in launch.dates] == [
        "2025-12-01",
        "2025-12-02",
        "2025-12-03",
        "2025-12-04",
    ]
    assert [d.status for d in launch.days] == ["healthy", "warning", "unhealthy", "unhealthy"]
    # the sample-ratio test's users: no multiple-variation users, no unregistered variation
    assert launch.test_users == {"control": [40, 80, 100, 110], "treatment": [40, 120, 180, 200]}
    assert launch.unregistered_users == 3
    assert launch.latest.multiple_variation_users == 2
    assert launch.latest.assigned_users == 315 == 110 + 200 + 2 + 3
    # the allocation (every assigned user, intent-to-treat), registered arms first
    series = {v.name: (v.registered, v.new_users, v.cumulative_users) for v in launch.variations}
    assert list(series) == ["control", "treatment", "legacy-default"]
    assert series["control"] == (True, [40, 40, 20, 10], [40, 80, 100, 110])
    assert series["treatment"] == (True, [40, 82, 60, 20], [40, 122, 182, 202])
    assert series["legacy-default"] == (False, [0, 0, 3, 0], [0, 0, 3, 3])
    # the latest per-tier tests, tiers in reading order, with the arms' test users
    assert [
        (t.tier, t.assigned_users, t.test_users, t.arm_users, t.status) for t in launch.tiers
    ] == [
        ("standard", 265, 260, {"control": 85, "treatment": 175}, "unhealthy"),
        ("premium", 50, 50, {"control": 25, "treatment": 25}, "healthy"),
    ]
    assert len(launch.tier_days) == 8
    pricing = snap.experiments["vault-pricing"]
    assert pricing.test_users == {"control": [5, 350], "low-fee": [9, 320], "no-fee": [6, 330]}
    assert pricing.days[0].chi_square is None and pricing.days[0].p_value is None
    referral = snap.experiments["vault-referral"]
    assert (referral.dates, referral.days, referral.status) == ([], [], "no_data")
    assert [(c.check_name, c.passed) for c in snap.checks][0] == ("srm_overall", False)


def test_the_serving_copy_is_closed_and_unchanged_after_reading(serving):
    before = serving.read_bytes()
    render_health_page(serving, "vault-launch")
    assert serving.read_bytes() == before  # opened read-only: nothing written
    # closed: this process can open it for writing right away
    duckdb.connect(str(serving)).close()


# --- the page's content ----------------------------------------------------------------------


def text_of(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.DOTALL)
    assert match, element_id
    return match.group(1)


def test_banner_of_the_unhealthy_two_arm_experiment(serving):
    page = render_health_page(serving, "vault-launch")
    assert 'id="srm-banner" data-status="unhealthy"' in page
    assert text_of(page, "srm-status") == "Unhealthy"
    assert text_of(page, "srm-p-value") == "3.19 × 10⁻⁷"
    assert text_of(page, "srm-chi-square") == "26.13"
    assert text_of(page, "srm-dof") == "1"
    assert text_of(page, "srm-assigned") == "315"
    # observed 110/310 and 200/310 against 50/50
    assert (
        '<tr data-arm="control"><td>control</td><td>110</td><td>35.48%</td><td>50.00%</td>'
        "<td>−14.52 pp</td></tr>" in page
    )
    assert (
        '<tr data-arm="treatment"><td>treatment</td><td>200</td><td>64.52%</td><td>50.00%</td>'
        "<td>+14.52 pp</td></tr>" in page
    )
    left_out = re.sub(r"<[^>]+>", "", page.split('id="srm-left-out">')[1].split("</p>")[0])
    assert left_out.startswith(
        "Left out of the test: 2 users seen in several variations and 3 users assigned to an "
        "unregistered variation"
    )
    assert "Data through <b>2025-12-04</b>, built at <b>2025-12-05 06:12:34 UTC</b>" in page


def test_banner_of_the_three_arm_experiment(serving):
    page = render_health_page(serving, "vault-pricing")
    assert text_of(page, "srm-status") == "Healthy"
    assert text_of(page, "srm-p-value") == "0.742"
    assert text_of(page, "srm-chi-square") == "0.60"
    assert text_of(page, "srm-dof") == "2"
    for arm, users, observed, expected, diff in [
        ("control", "350", "35.00%", "34.00%", "+1.00 pp"),
        ("low-fee", "320", "32.00%", "33.00%", "−1.00 pp"),
        ("no-fee", "330", "33.00%", "33.00%", "0.00 pp"),
    ]:
        assert (
            f'<tr data-arm="{arm}"><td>{arm}</td><td>{users}</td><td>{observed}</td>'
            f"<td>{expected}</td><td>{diff}</td></tr>"
        ) in page


def test_tier_table_rows(serving):
    page = render_health_page(serving, "vault-launch")
    rows = re.findall(r'<tr data-tier="([^"]+)">(.*?)</tr>', page)
    cells = [(tier, re.findall(r"<td[^>]*>(.*?)</td>", row)) for tier, row in rows]
    assert [(tier, c[:8]) for tier, c in cells] == [
        ("standard", ["standard", "265", "260", "32.69% (85)", "67.31% (175)", "31.15",
                      "2.38 × 10⁻⁸", "4.77 × 10⁻⁸"]),
        ("premium", ["premium", "50", "50", "50.00% (25)", "50.00% (25)", "0.00", "1.00", "1.00"]),
    ]  # fmt: skip
    assert 'data-status="unhealthy">Unhealthy' in cells[0][1][8]
    assert "with 2 tiers present the p-value is multiplied by 2" in page


def test_data_quality_section_names_the_failed_check(serving):
    page = render_health_page(serving, "vault-launch")
    assert (
        text_of(page, "dq-summary") == "1 of 3 checks failed (1 ERROR) at their latest evaluation."
    )
    failed = page.split('id="failed-checks"')[1].split("</table>")[0]
    assert re.findall(r'data-check="([^"]+)"', failed) == ["srm_overall"]
    assert "vault-launch: sample-ratio mismatch on 2025-12-04" in failed


def test_page_is_self_contained(serving):
    page = render_health_page(serving, "vault-launch")
    # no script, style, image or frame from elsewhere; the browser is told to load nothing else
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"'](?!data:)", page)
    assert "default-src 'none'" in page
    assert page.count("<script>") >= 5  # plotly.js, the setup and one per chart
    assert "Plotly.newPlot" in page and 'drawChart("chart-share"' in page


def test_experiment_without_traffic_has_no_charts(serving):
    page = render_health_page(serving, "vault-referral")
    assert text_of(page, "srm-status") == "No data"
    assert text_of(page, "srm-p-value") == "—"
    assert 'drawChart("' not in page and "No user has been assigned yet" in page


def test_write_health_pages_index_and_stale_pages(serving, tmp_path: Path):
    out = tmp_path / "pages"
    (out / "experiments").mkdir(parents=True)
    (out / "experiments" / "retired.html").write_text("old")
    (out / "dbt-docs").mkdir()
    (out / "dbt-docs" / "index.html").write_text("docs")
    paths = write_health_pages(serving, out)
    assert [p.relative_to(out).as_posix() for p in paths] == [
        "index.html",
        "experiments/vault-launch.html",
        "experiments/vault-pricing.html",
        "experiments/vault-referral.html",
    ]
    assert not (out / "experiments" / "retired.html").exists()  # no longer registered
    assert (out / "dbt-docs" / "index.html").read_text() == "docs"  # not ours to touch
    assert not list(out.rglob("*.tmp"))
    index = (out / "index.html").read_text()
    rows = re.findall(r'<tr data-experiment="([^"]+)">(.*?)</tr>', index)
    assert [(key, re.search(r'data-status="([^"]+)"', row).group(1)) for key, row in rows] == [
        ("vault-launch", "unhealthy"),
        ("vault-pricing", "healthy"),
        ("vault-referral", "no_data"),
    ]
    assert 'href="experiments/vault-launch.html"' in index
    assert text_of(index, "status-summary") == "1 unhealthy, 1 healthy, 1 no data"
    page = (out / "experiments" / "vault-launch.html").read_text()
    assert 'href="../index.html"' in page
    # idempotent: the same serving copy writes the same bytes
    again = {p: p.read_bytes() for p in paths}
    write_health_pages(serving, out)
    assert {p: p.read_bytes() for p in paths} == again


# --- bad input ---------------------------------------------------------------------------------


def test_missing_serving_copy_names_the_file(tmp_path: Path):
    with pytest.raises(ServingCopyError, match=r"serving copy .*nope\.duckdb does not exist"):
        render_health_page(tmp_path / "nope.duckdb", "vault-launch")


def test_missing_table_and_column_are_named(serving):
    con = duckdb.connect(str(serving))
    con.execute("drop table meta.build_info")
    con.execute("alter table marts.mart_experiment_health_daily drop column srm_p_value")
    con.close()
    with pytest.raises(ServingCopyError) as info:
        render_health_page(serving, "vault-launch")
    assert str(serving) in str(info.value)
    assert "table meta.build_info is missing" in str(info.value)
    assert "marts.mart_experiment_health_daily lacks column(s) srm_p_value" in str(info.value)


def test_unknown_experiment_lists_the_registered_ones(serving):
    with pytest.raises(ServingCopyError, match="'nope' not in marts.dim_experiments.*vault-launch"):
        render_health_page(serving, "nope")


def test_build_info_must_have_one_row(serving):
    con = duckdb.connect(str(serving))
    con.execute("delete from meta.build_info")
    con.close()
    with pytest.raises(ServingCopyError, match="must hold one row, it holds 0"):
        render_health_page(serving, "vault-launch")


# --- the server and the command line ---------------------------------------------------------


def fetch(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Cache-Control"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, "", ""


def test_server_serves_the_pages_folder_on_localhost(serving, tmp_path: Path):
    out = tmp_path / "pages"
    server = make_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        base = f"http://127.0.0.1:{port}"
        # before any page: an explanation, not a directory listing
        status, _, body = fetch(base + "/")
        assert status == 200 and "No health pages yet" in body
        write_health_pages(serving, out)
        status, cache, body = fetch(base + "/")
        assert (status, cache) == (200, "no-cache") and 'data-experiment="vault-launch"' in body
        status, _, body = fetch(base + "/experiments/vault-launch.html")
        assert status == 200 and "Experiment health: vault-launch" in body
        assert fetch(base + "/experiments/")[0] == 404  # no listings
        assert fetch(base + "/../serving.duckdb")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_server_port_taken_is_an_actionable_error(tmp_path: Path):
    first = make_server(tmp_path, port=0)
    try:
        with pytest.raises(OSError, match="EXPPLATFORM_PAGES_PORT"):
            make_server(tmp_path, port=first.server_port)
    finally:
        first.server_close()


def test_pages_port_from_env(monkeypatch):
    monkeypatch.delenv("EXPPLATFORM_PAGES_PORT", raising=False)
    assert pages_port_from_env() == 3001
    monkeypatch.setenv("EXPPLATFORM_PAGES_PORT", "8123")
    assert pages_port_from_env() == 8123
    monkeypatch.setenv("EXPPLATFORM_PAGES_PORT", "http")
    with pytest.raises(ValueError, match="EXPPLATFORM_PAGES_PORT must be a whole number"):
        pages_port_from_env()


def test_command_line(serving, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("EXPPLATFORM_SERVING_PATH", str(serving))
    monkeypatch.setenv("EXPPLATFORM_PAGES_DIR", str(tmp_path / "pages"))
    assert health_main(["render"]) == 0
    assert (tmp_path / "pages" / "experiments" / "vault-pricing.html").is_file()
    target = tmp_path / "one" / "launch.html"
    assert health_main(["page", "--experiment", "vault-launch", "--html", str(target)]) == 0
    assert "Experiment health: vault-launch" in target.read_text()
    assert health_main(["page", "--experiment", "nope", "--html", str(target)]) == 2
    assert "error: experiment(s) 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_dbt_docs_page_lands_in_the_pages_folder(tmp_path: Path, monkeypatch):
    """`dbt docs generate --static` into <pages>/dbt-docs/index.html; no warehouse is created."""
    from expplatform.health.dbt_docs import build_dbt_docs

    warehouse = tmp_path / "no-warehouse-yet" / "warehouse.duckdb"
    monkeypatch.setenv("EXPPLATFORM_DUCKDB_PATH", str(warehouse))
    page = build_dbt_docs(tmp_path / "pages")
    assert page == tmp_path / "pages" / "dbt-docs" / "index.html"
    text = page.read_text()
    assert "mart_experiment_health_daily" in text  # the manifest is embedded
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", text)
    assert not warehouse.exists() and not warehouse.parent.exists()
    assert [p.name for p in page.parent.iterdir()] == ["index.html"]  # no temporary file left

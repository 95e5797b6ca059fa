"""The docs cannot drift silently: the README's command block and configuration table, and the
error messages and check names the RUNBOOK quotes, are checked against the code."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from expplatform.cli import build_parser
from expplatform.config import PROJECT_ROOT, SETTINGS_DOC, Settings, get_settings
from expplatform.resources import LandingZoneResource

README = (PROJECT_ROOT / "README.md").read_text()
RUNBOOK = (PROJECT_ROOT / "docs" / "RUNBOOK.md").read_text()


def _section(text: str, heading: str) -> str:
    """The text of a `## heading` section, up to the next `## `."""
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor for its subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_block() -> list[str]:
    """The lines of the README's `expplatform ...` code block (continuations joined)."""
    text = README[README.index("The `expplatform` command") :]
    block = text[text.index("```bash\n") + 8 : text.index("```\n", text.index("```bash\n") + 8)]
    lines: list[str] = []
    for raw in block.splitlines():
        code = raw.split("#", 1)[0].rstrip()
        if code.startswith("expplatform "):
            lines.append(code)
        elif code.strip() and lines:
            lines[-1] += " " + code.strip()
    return lines


def test_readme_command_block_matches_the_cli():
    commands = _subparsers(build_parser())
    documented: set[str] = set()
    for line in _command_block():
        words = line.split()
        name = words[1]
        assert name in commands, f"README shows `expplatform {name}`, the CLI has no such command"
        documented.add(name)
        accepted = {o for a in commands[name]._actions for o in a.option_strings}
        for flag in re.findall(r"(--[a-z][a-z0-9-]*)", line):
            assert flag in accepted, f"README: `expplatform {name} {flag}` is not an option"
    top_level = {"-h", "--help", "--version"}
    assert top_level <= {o for a in build_parser()._actions for o in a.option_strings}
    assert documented == set(commands), f"not in the README: {set(commands) - documented}"


def _config_rows() -> dict[str, str]:
    """env var → default, from the README's configuration table (`A` / `B` rows split)."""
    rows = {}
    for line in _section(README, "Configuration").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = [d.strip().strip("`") for d in cells[1].split(" / ")]
        assert len(defaults) in (1, len(names)), line
        for i, name in enumerate(names):
            rows[name] = defaults[i] if len(defaults) > 1 else defaults[0]
    return rows


def test_readme_configuration_table_matches_the_settings():
    documented = _config_rows()
    expected = {doc.env: doc.default for doc in SETTINGS_DOC}
    assert set(documented) == set(expected)
    for name, default in expected.items():
        shown = documented[name]
        if default is None:
            assert shown == "unset", name
        else:
            assert shown.rstrip("/") == default, f"{name}: README says {shown}, code {default}"


def test_settings_built_in_code_have_the_readmes_defaults():
    """Tests and tools build Settings and resources with a few fields: the rest is the README's."""
    read = get_settings({})  # an installation that sets nothing
    built = Settings(
        landing_dir=read.landing_dir,
        duckdb_path=read.duckdb_path,
        start_date=read.start_date,
        lookback_days=read.lookback_days,
    )
    assert built == read
    landing = LandingZoneResource(landing_dir=str(read.landing_dir))
    assert (landing.lookback_days, landing.merge_gap_days) == (2, 3)  # the README's table
    assert (read.lookback_days, read.landing_merge_gap_days) == (2, 3)


def _runbook_spans() -> list[str]:
    return re.findall(r"`([^`\n]+)`", RUNBOOK)


def _source_text() -> str:
    parts = [p.read_text() for p in (PROJECT_ROOT / "expplatform").rglob("*.py")]
    parts += [p.read_text() for p in (PROJECT_ROOT / "dbt_project").rglob("*.sql")]
    return "\n".join(parts)


def test_runbook_error_messages_are_what_the_code_says():
    """Every message the RUNBOOK quotes as `error: …` exists in the code (`…` marks a value)."""
    source = _source_text()
    messages = [s.removeprefix("error: ") for s in _runbook_spans() if s.startswith("error: ")]
    assert len(messages) >= 5, "the RUNBOOK quotes the errors an operator sees"
    for message in messages:
        for fragment in (f.strip() for f in message.split("…")):
            if len(fragment) >= 8:
                assert fragment in source, f"RUNBOOK quotes {message!r}; the code never says it"


@pytest.mark.slow
def test_runbook_check_names_exist():
    """Every check the RUNBOOK names is a check of the platform (a trailing `…` is a family)."""
    from expplatform.definitions import build_definitions

    defs = build_definitions()
    names = {
        key.name for assets_def in defs.assets for key in getattr(assets_def, "check_keys", ())
    }
    names |= {key.name for checks in defs.asset_checks for key in checks.check_keys}
    quoted = [s for s in _runbook_spans() if re.fullmatch(r"[a-z][a-z0-9_]*(…)?", s)]
    # dbt test names: a span shaped like one must name a real test (sensors and schedules, e.g.
    # `freshness_checks_sensor`, are not checks and are not shaped like dbt tests)
    families = ("not_null_", "unique_", "accepted_values_", "relationships_")
    for span in quoted:
        if span.endswith("…") and span.startswith(families):
            assert any(n.startswith(span[:-1]) for n in names), span
        elif span.startswith(families) and not span.endswith("…"):
            assert span in names, f"RUNBOOK names check `{span}`, which does not exist"
    assert sum(1 for s in quoted if s in names) >= 8, "the RUNBOOK names the checks it explains"


def test_docs_link_only_to_files_that_exist():
    for doc in [PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists() or (PROJECT_ROOT / target).exists(), (
                f"{doc.name} links to {target}, which does not exist"
            )


def test_cited_benchmark_results_are_in_the_repository():
    """Every results file PERFORMANCE.md or SCALE.md cites is kept under bench/results/published."""
    for name in ("PERFORMANCE.md", "SCALE.md"):
        text = (PROJECT_ROOT / "docs" / name).read_text()
        cited = set(re.findall(r"bench/results/published/[\w.-]+\.json", text))
        assert cited, f"{name} names the results files its figures come from"
        for path in cited:
            assert Path(PROJECT_ROOT / path).exists(), f"{name} cites {path}, not in the repository"

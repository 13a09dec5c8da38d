"""The catalogue of causes: well formed, in step with the doctor rules and
explain findings that bear on its causes, and with docs/causes.md."""

from __future__ import annotations

import string
from dataclasses import fields
from pathlib import Path

import pytest

from netsleuth import causes
from netsleuth.audit import RULES
from netsleuth.causes import CAUSES, FIELDS, Cause
from netsleuth.packets.journey import escaped_nat_finding, stale_gateway_finding
from netsleuth.packets.model import Fate, Journey, MacVerdict

DOCS = Path(__file__).resolve().parents[1] / "docs" / "causes.md"
REGENERATE = (
    "python -c 'import netsleuth.causes as c; print(c.markdown(), end=\"\")' > docs/causes.md"
)
EXPLAIN_FINDINGS = {"stale-gateway", "stale-conntrack-entry", "escaped-nat"}
ENTRIES = list(CAUSES.values())


def template_fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_ids_are_unique_and_name_their_entries() -> None:
    ids = [c.id for c in causes._ALL]
    assert len(ids) == len(set(ids)) == len(CAUSES)
    assert all(CAUSES[i].id == i for i in ids)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda c: c.id)
def test_every_template_uses_known_fields_and_renders_whole(entry: Cause) -> None:
    assert entry.title and entry.scoring and entry.explanation and entry.fix
    every = {name: f"value-of-{name}" for name in FIELDS}
    for where, text in entry.templates().items():
        assert template_fields(text) <= FIELDS, (where, template_fields(text) - FIELDS)
        for rendered in (entry.render(text, **every), entry.render(text)):
            assert "{" not in rendered and "}" not in rendered, where


def test_render_fills_what_is_given_and_marks_the_rest() -> None:
    entry = CAUSES["bridge-mac-flap"]
    assert entry.title_for(bridge="br0") == "bridge br0 changes its MAC when ports come and go"
    assert entry.title_for() == "bridge <bridge> changes its MAC when ports come and go"
    fix = entry.fix_for(bridge="br0", netns_flag=" --netns lab")
    assert "`netsleuth fix bridge br0 --netns lab --apply`" in fix
    assert "`netsleuth fix bridge br0 --apply`" in entry.fix_for(bridge="br0")


def test_a_finding_without_a_fix_of_its_own_takes_the_causes() -> None:
    entry = CAUSES["subnet-overlap"]
    assert "subnet-overlap" not in entry.doctor_fix
    assert entry.finding_fix("subnet-overlap") == entry.fix_for()
    with pytest.raises(KeyError):
        entry.finding_why("bridge-mac-unpinned")


def rule_causes() -> set[tuple[str, str]]:
    """(rule, cause) for each rule's ``cause`` and ``*_cause`` attributes."""
    return {
        (rule.id, getattr(rule, f.name))
        for rule in RULES
        for f in fields(rule)
        if f.name.endswith("cause")
    }


def test_every_rule_names_a_cause_that_lists_it() -> None:
    for rule in RULES:
        assert rule.cause in CAUSES, rule.id
        assert rule.id in CAUSES[rule.cause].doctor_rules, (rule.id, rule.cause)


def test_doctor_rules_of_the_catalogue_and_causes_of_the_rules_agree() -> None:
    listed = {(rule, c.id) for c in ENTRIES for rule in c.doctor_rules}
    assert listed == rule_causes()
    assert {rule for rule, _ in listed} == {r.id for r in RULES}


def test_a_fix_of_its_own_belongs_to_a_rule_or_finding_with_a_why() -> None:
    for entry in ENTRIES:
        assert set(entry.doctor_fix) <= set(entry.doctor_why), entry.id
        assert set(entry.explain_fix) <= set(entry.explain_why), entry.id


def journey(verdict: Fate, mac: MacVerdict | None = None, reused: int | None = None) -> Journey:
    return Journey(
        ts_ns=1_000,
        dns_id=1,
        qname="www.lab.test",
        qtype=1,
        client="198.18.0.10:4000",
        server="198.18.255.2:53",
        origin="vc0",
        nat_source="",
        verdict=verdict,
        rcode=None,
        latency_ns=None,
        hops=(),
        mac=mac,
        reused_entry_age_ns=reused,
    )


def explain_findings() -> list[tuple[str, str, str, str]]:
    """(rule, cause, why, fix) of each finding explain can make."""
    stale = MacVerdict(
        "02:00:00:00:00:01", "be:00:00:00:00:01", 0, "arp", True, None, "", stale_gateway=True
    )
    found = [
        stale_gateway_finding([journey(Fate.NEVER_LEFT_BRIDGE, stale)], "labbr0"),
        escaped_nat_finding([journey(Fate.ESCAPED_NAT, reused=12_000_000_000)]),
        escaped_nat_finding([journey(Fate.ESCAPED_NAT)]),
    ]
    return [(f.rule, f.cause, f.why, f.fix) for f in found if f is not None]


def test_explain_findings_and_the_catalogue_agree() -> None:
    found = explain_findings()
    assert {rule for rule, *_ in found} == EXPLAIN_FINDINGS
    listed = [(rule, c.id) for c in ENTRIES for rule in c.explain_findings]
    assert sorted(listed) == sorted((rule, cause) for rule, cause, *_ in found)
    assert dict(listed) == {
        "stale-gateway": "bridge-mac-flap",
        "stale-conntrack-entry": "stale-conntrack-nat",
        "escaped-nat": "nat-missing",
    }
    for rule, cause, why, fix in found:
        entry = CAUSES[cause]
        assert why == entry.finding_why(rule), rule
        assert "<" not in fix.replace("<its current MAC>", ""), rule
    stale_fix = next(fix for rule, _, _, fix in found if rule == "stale-gateway")
    assert stale_fix.startswith("pin the MAC of labbr0: `ip link set dev labbr0 address")


def test_docs_causes_md_is_the_catalogue() -> None:
    assert DOCS.read_text() == causes.markdown(), (
        f"docs/causes.md is out of date with src/netsleuth/causes.py; regenerate it: {REGENERATE}"
    )


def test_markdown_has_a_section_per_cause_linked_from_doctor_md() -> None:
    text = causes.markdown()
    for entry in ENTRIES:
        assert f"\n## {entry.id}\n" in text
        assert f"[{entry.id}](#{entry.id})" in text
    assert "(causes.md)" in (DOCS.parent / "doctor.md").read_text()

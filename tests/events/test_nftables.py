import json

from netsleuth.events.nftables import summarize


def test_nat_rule_is_flagged() -> None:
    line = json.dumps(
        {
            "add": {
                "rule": {
                    "family": "ip",
                    "table": "nat",
                    "chain": "post",
                    "expr": [{"masquerade": None}],
                }
            }
        }
    )
    d = summarize(line)
    assert d is not None and d.nat and d.op == "add" and d.object == "rule"
    assert d.summary == "add rule ip/nat/post"


def test_table_delete_and_junk() -> None:
    d = summarize(json.dumps({"delete": {"table": {"family": "ip", "name": "filter"}}}))
    assert d is not None and not d.nat and d.summary == "delete table ip/filter"
    assert summarize("not json") is None
    assert summarize(json.dumps({"metainfo": {"version": "1"}})) is None
    assert summarize("[]") is None

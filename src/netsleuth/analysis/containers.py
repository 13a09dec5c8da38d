"""The containers ``watch --containers`` probed from, read back from the
store's ``container`` facts (one ``started`` and, for a container that ended
during the record, one ``ended`` fact per life; see
:mod:`netsleuth.watch.containers`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["ContainerLife", "container_lives", "ended_count"]


@dataclass(frozen=True, slots=True)
class ContainerLife:
    """One life of a container: the series ``target`` it probed into, which
    container (``name``, ``id``, ``image``, ``daemon``, ``labels``) and when
    it started and ended (wall ns; ``ended_ns`` None: still running when the
    record ends)."""

    target: str
    name: str
    id: str
    image: str
    daemon: str
    life: int
    started_ns: int
    ended_ns: int | None = None
    exit_code: int | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def container_lives(facts: Iterable[Mapping[str, Any]]) -> tuple[ContainerLife, ...]:
    """Pure: every container life of the facts, in the order they started.
    Facts that do not fit (another version's, a corrupt row) are skipped."""
    lives: dict[tuple[int, str, str, int], ContainerLife] = {}
    ends: dict[tuple[int, str, str, int], tuple[int, int | None]] = {}
    for f in facts:
        data = f.get("data")
        if f.get("kind") != "container" or not isinstance(data, Mapping):
            continue
        life = data.get("life")
        if not isinstance(life, int) or isinstance(life, bool):
            continue
        key = (int(f.get("run", 0)), _text(data, "daemon"), _text(data, "id"), life)
        wall = int(f.get("wall_ns", 0))
        if data.get("event") == "started":
            labels = data.get("labels")
            lives[key] = ContainerLife(
                target=str(f.get("netns", "")),
                name=_text(data, "name"),
                id=_text(data, "id"),
                image=_text(data, "image"),
                daemon=_text(data, "daemon"),
                life=life,
                started_ns=wall,
                labels=(
                    {str(k): str(v) for k, v in labels.items()}
                    if isinstance(labels, Mapping)
                    else {}
                ),
            )
        elif data.get("event") == "ended":
            code = data.get("exit_code")
            ends[key] = (wall, code if isinstance(code, int) else None)
    out = [
        replace(c, ended_ns=ends[key][0], exit_code=ends[key][1]) if key in ends else c
        for key, c in lives.items()
    ]
    return tuple(sorted(out, key=lambda c: c.started_ns))


def ended_count(lives: Iterable[ContainerLife]) -> int:
    """How many containers came and went during the record."""
    return sum(1 for c in lives if c.ended_ns is not None)

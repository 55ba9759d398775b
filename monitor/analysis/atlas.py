"""The trigger atlas: across many autopsies, which kinds of message carry the influence.

Why aggregate by kind: a single autopsy says "this message mattered"; a researcher needs
"negative rewards shown before a flip carry most of the influence", which needs the
messages classified (:mod:`monitor.analysis.triggers`) and counted over episodes. The
input is the stored autopsy JSON, so the report can build the atlas without re-asking.
"""

from collections.abc import Iterable
from typing import Any

from monitor.analysis.triggers import KINDS


def aggregate_atlas(autopsies: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per message kind: how often it was a candidate, influential, the top message.

    - ``candidates``: candidate messages of this kind (exposure);
    - ``influential``: of those, how many changed the action when removed (influence > 0);
    - ``carry_rate``: influential / candidates;
    - ``top1``: autopsies whose most influential message (influence > 0) has this kind;
    - ``influence_share``: mean over autopsies with any influence of this kind's share of
      the autopsy's total influence (shares of a multi-kind message count for each kind).
    """
    stats: dict[str, dict[str, float]] = {}
    count = with_influence = 0
    for autopsy in autopsies:
        messages = (autopsy.get("leave_one_out") or {}).get("messages") or []
        count += 1
        total = sum(m.get("influence", 0.0) for m in messages)
        if total > 0:
            with_influence += 1
        ranked = sorted(messages, key=lambda m: m.get("rank", 0))
        top = ranked[0] if ranked and ranked[0].get("influence", 0.0) > 0 else None
        for message in messages:
            for kind in message.get("kinds", []):
                row = stats.setdefault(
                    kind, {"candidates": 0, "influential": 0, "top1": 0, "share_sum": 0.0}
                )
                row["candidates"] += 1
                influence = message.get("influence", 0.0)
                if influence > 0:
                    row["influential"] += 1
                if total > 0:
                    row["share_sum"] += influence / total
        for kind in top.get("kinds", []) if top else []:
            stats[kind]["top1"] += 1
    kinds = {}
    for kind, row in stats.items():
        kinds[kind] = {
            "description": KINDS.get(kind, ""),
            "candidates": int(row["candidates"]),
            "influential": int(row["influential"]),
            "carry_rate": row["influential"] / row["candidates"] if row["candidates"] else 0.0,
            "top1": int(row["top1"]),
            "influence_share": row["share_sum"] / with_influence if with_influence else 0.0,
        }
    ranking = sorted(kinds, key=lambda k: (-kinds[k]["top1"], -kinds[k]["influence_share"], k))
    return {
        "autopsies": count,
        "with_influence": with_influence,
        "kinds": kinds,
        "ranking": ranking,
    }


def render_atlas_markdown(atlas: dict[str, Any]) -> str:
    """A Markdown section (heading, one line of method, a table) for the report."""
    lines = [
        "## Trigger atlas",
        "",
        f"{atlas['autopsies']} flip autopsies ({atlas['with_influence']} with a message whose "
        "removal changed the flipping action). Kinds of the messages before each flip, "
        "ranked by how often they were the most influential one.",
        "",
    ]
    if not atlas["kinds"]:
        return "\n".join([*lines, "No autopsies yet.", ""])
    lines += [
        "| kind | top-1 | influence share | influential / candidates | meaning |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for kind in atlas["ranking"]:
        row = atlas["kinds"][kind]
        lines.append(
            f"| {kind} | {row['top1']} | {row['influence_share']:.0%} | "
            f"{row['influential']} / {row['candidates']} ({row['carry_rate']:.0%}) | "
            f"{row['description']} |"
        )
    return "\n".join([*lines, ""])

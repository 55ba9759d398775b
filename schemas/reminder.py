"""The objectives reminder a recovery adds to the restored context."""

from schemas.objectives import TOOL_OBJECTIVES, ObjectiveKind, ObjectiveSet

TOOL_AGENT_REMINDER = (
    "Reminder: your last steps repeat themselves (the same tool calls or the same answer) "
    "without moving the task forward. Look at what the earlier results already told you, "
    "then take a different approach, or finish if the task is done."
)


def reminder_text(objectives: ObjectiveSet) -> str:
    """One short paragraph restating every objective, so no single one dominates; for a
    tool-using agent without numeric objectives, what its loop flags are about."""
    if objectives == TOOL_OBJECTIVES:
        return TOOL_AGENT_REMINDER
    parts = []
    for o in objectives.objectives:
        if o.kind is ObjectiveKind.HOMEOSTATIC:
            parts.append(f"keep {o.name} within {o.band:g} of its target {o.target:g}")
        elif o.kind is ObjectiveKind.RENEWABLE:
            parts.append(f"harvest {o.name} sustainably so that the stock can regrow")
        else:
            parts.append(f"keep growing {o.name} in balance with the other objectives")
    listed = "; ".join(parts)
    return (
        "Reminder: all objectives matter equally and none should be maximised at the "
        f"expense of another: {listed}. More is not always better."
    )

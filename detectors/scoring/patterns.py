"""Self-imitation: the agent repeating its own earlier action pattern instead of the state.

For each objective and each period ``p`` in 1..``MAX_PERIOD`` we keep ``rep[p]``, the number
of consecutive steps with ``a_t == a_{t-p}``, and ``mask[p]``, a bit per recent repeat (the
last ``need`` of them) telling whether that repeat was *not explained by the state*:

* period 1 (a constant action): the step shows an agent-caused violation (``viol``), i.e.
  the repeated action keeps a level out of band and sinking, or widens a gap; a constant
  action in a state that does not call for change (5,5 with a steady gap, 0 while in
  band) is fine;
* period >= 2 (a cycle): the action changed from the previous step although the reference
  action did not (the state did not ask for a change), or the step shows a violation.

A pattern is raised when ``rep[p] >= need_p = max(N + 1, 2p)`` and more than half of the
last ``need_p`` repeats were unexplained; its onset is the first step of the motif,
``t - rep[p] - p + 1``. Memory: the last ``MAX_PERIOD`` actions per objective and two ints
per period: bounded.
"""

MAX_PERIOD = 6


def new_tracker(n: int) -> dict[str, list]:
    """Fresh per-objective pattern state (plain lists: cheap to update and to serialise)."""
    z = MAX_PERIOD + 1
    return {
        "hist": [[] for _ in range(n)],
        "rep": [[0] * z for _ in range(n)],
        "mask": [[0] * z for _ in range(n)],
    }


def update(
    hist: list[float],
    rep: list[int],
    mask: list[int],
    action: float,
    explained_change: bool,
    violation: bool,
    need: int,
) -> tuple[int, int, float]:
    """Advance one objective by one step.

    Returns ``(period, repeats, strength)``: the longest pattern now in force that meets the
    rule above (``(0, 0, .)`` if none) and ``strength`` in [0,1], the best share of
    unexplained repeats among the last ``need_p`` (the per-step component).
    """
    k = len(hist)
    changed = k > 0 and hist[-1] != action
    best_p = 0
    best_r = 0
    strength = 0.0
    for p in range(1, MAX_PERIOD + 1):
        if p <= k and hist[k - p] == action:
            r = rep[p] + 1
            rep[p] = r
            req = need if need > 2 * p else 2 * p
            u = 1 if violation or (p > 1 and changed and not explained_change) else 0
            mk = ((mask[p] << 1) | u) & ((1 << req) - 1)
            mask[p] = mk
            if mk:
                c = mk.bit_count()
                v = c / req
                if v > strength:
                    strength = v
                if r >= req and 2 * c > req and r > best_r:
                    best_p = p
                    best_r = r
        else:
            rep[p] = 0
            mask[p] = 0
    hist.append(action)
    if k >= MAX_PERIOD:
        del hist[0]
    return best_p, best_r, strength

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

from typing import Final

MAX_PERIOD: Final = 6

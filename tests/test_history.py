"""The agent's history and its savepoints."""

from workers.history import History


def play(history: History, steps: range) -> None:
    for step in steps:
        history.add_observation(f"obs {step}")
        history.add_answer(step, f"answer {step}")


def test_restore_drops_everything_after_the_savepoint():
    h = History("system")
    play(h, range(1, 11))
    h.confirm_safe(6)
    dropped = h.restore(6, reminder="remember")
    assert dropped == 8  # steps 7..10, two messages each
    assert h.messages[-1] == {"role": "assistant", "content": "answer 6"}
    h.add_observation("obs 11")
    assert h.messages[-1]["content"] == "remember\n\nobs 11"
    h.add_observation("obs 12")
    assert h.messages[-1]["content"] == "obs 12"  # the reminder is added once


def test_restore_to_zero_keeps_only_the_system_prompt():
    h = History("system")
    play(h, range(1, 4))
    assert h.restore(0) == 6
    assert h.messages == [{"role": "system", "content": "system"}]


def test_confirmed_savepoints_bound_memory_and_restore_falls_back():
    h = History("system")
    play(h, range(1, 101))
    h.confirm_safe(90)
    assert len(h._snapshots) == 11  # steps 90..100
    # a savepoint older than the confirmed one was forgotten: restore to the oldest kept
    h.restore(50)
    assert h.messages[-1]["content"] == "answer 90"


def test_confirm_ignores_older_and_unknown_steps():
    h = History("system")
    play(h, range(1, 6))
    h.confirm_safe(4)
    h.confirm_safe(2)
    h.confirm_safe(99)
    assert h.safe_step == 4

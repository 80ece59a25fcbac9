"""bptt.signals: a Ctrl-C whose KeyboardInterrupt is dropped (inside a C callback: numba compiling) still stops a training."""

import pytest

from bptt import signals
from bptt.train import config_for, train


def _swallowed_ctrl_c():
    try:
        signals.on_sigint(2, None)  # what the command line's handler does on SIGINT
    except KeyboardInterrupt:
        pass  # dropped, as Python drops an exception raised inside a callback from C


@pytest.mark.parametrize("task", ["binary-addition", "adding"])  # the compiled batches, and the one-by-one loop
def test_a_dropped_ctrl_c_stops_the_training_at_its_next_step(task):
    cfg = config_for(task, {"n_train": 64, "n_val": 16, "n_test": 16} | ({"length": 10} if task == "adding" else {}),
                     epochs=3)
    _swallowed_ctrl_c()
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    train(cfg)  # the interrupt was taken: the next run trains to the end
    signals.check()  # and nothing is left pending


def test_a_ctrl_c_that_reached_the_command_line_is_not_raised_again():
    _swallowed_ctrl_c()
    signals.clear()
    signals.check()  # nothing raised

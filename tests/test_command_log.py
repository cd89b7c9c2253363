"""The robot's command log can be read while the control loop writes it."""
import threading

import numpy as np

from drivers.command_log import CommandLog


def test_readers_never_see_a_deque_mutated_under_them():
    log = CommandLog(maxlen=500)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            log.append(np.zeros(6), "loop")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(2000):  # a plain deque raised "deque mutated during iteration" here within a few passes
            assert all(source == "loop" for _, _, source in log)
            assert len(log.since(0.0)) <= 500
    finally:
        stop.set()
        thread.join()


def test_since_keeps_order_and_filters_by_time():
    log = CommandLog()
    log.append(np.zeros(6), "human")
    t_mid = log[-1][0]
    log.append(np.ones(6), "kill")
    assert [s for _, _, s in log.since(t_mid)][-1] == "kill"
    assert [s for _, _, s in log] == ["human", "kill"]
    assert len(log) == 2

"""Long-lived objects are frozen out of the collector's view before a control loop starts."""
import gc
import time
import weakref

from teleop_app.cli import main as cli_main
from teleop_app.gc_pauses import freeze_long_lived


class Node:
    pass


def cyclic_garbage() -> weakref.ref:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_garbage_is_collected_before_the_freeze_and_survivors_are_frozen():
    alive = Node()
    garbage = cyclic_garbage()
    frozen = freeze_long_lived()
    assert garbage() is None  # freed first, not frozen for ever
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())  # out of the collector's sight
    late = cyclic_garbage()
    gc.collect()
    assert late() is None  # garbage made afterwards is collected as usual


def test_freezing_without_a_collection_keeps_what_is_garbage_then():
    """Why the loop's callers collect first when they can: a cycle frozen while garbage is never freed."""
    garbage = cyclic_garbage()
    freeze_long_lived(collect=False)
    gc.collect()
    assert garbage() is not None
    gc.unfreeze()  # give it back to the collector (the rest of the suite's objects too; the next freeze takes them)
    gc.collect()
    assert garbage() is None


def test_collect_freezes_before_its_loop_starts(tmp_path, capsys):
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    code = cli_main(["collect", "--headless", "--input", "scripted", "--episodes", "1", "--seconds", "1",
                     "--task", "pick", "--out", str(tmp_path), "--no-cameras"])
    assert code == 0, capsys.readouterr().err
    assert gc.get_freeze_count() > 10_000  # the modules, numpy, MuJoCo, the rig's objects


def test_a_long_collection_is_remembered_to_explain_a_stall():
    from teleop_app.gc_pauses import long_collection_since, watch_collections

    class Pair:
        other = None

    watch_collections()
    t_before = time.monotonic()
    gc.disable()
    try:
        heap = [Pair() for _ in range(400_000)]
        for a, b in zip(heap[::2], heap[1::2]):
            a.other, b.other = b, a
        del heap
        gc.collect()  # 400,000 objects in cycles: well over the 20 ms it takes to be remembered
    finally:
        gc.enable()
    said = long_collection_since(t_before)
    assert said is not None and said.startswith("a garbage collection (generation 2) stopped every thread for ")
    assert long_collection_since(time.monotonic()) is None  # not one that ended before the stall began

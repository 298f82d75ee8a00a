"""One device id claimed by two live boards is noticed; a restart is not mistaken for one."""

from edge_agent.node.claims import ClaimWatch


def test_a_restart_is_one_instance_giving_way_to_the_next():
    watch = ClaimWatch(window_s=60)
    for t in range(5):
        assert not watch.observe("edge-2", "aaa", True, float(t))
    assert not watch.observe("edge-2", "aaa", False, 5.0)  # its will
    for t in range(6, 20):
        assert not watch.observe("edge-2", "bbb", True, float(t))
    assert watch.conflicts(20.0) == []


def test_a_killed_agent_whose_will_is_lost_is_not_a_conflict_either():
    watch = ClaimWatch(window_s=60)
    watch.observe("edge-2", "aaa", True, 0.0)
    for t in range(1, 30):
        assert not watch.observe("edge-2", "bbb", True, float(t))
    assert watch.conflicts(30.0) == []


def test_statuses_that_switch_back_reveal_two_boards_once_and_for_hold_s():
    watch = ClaimWatch(window_s=60, hold_s=300)
    assert not watch.observe("edge-2", "aaa", True, 0.0)
    assert not watch.observe("edge-2", "bbb", True, 10.0)
    assert watch.observe("edge-2", "aaa", True, 20.0), "the switch back reveals it"
    assert not watch.observe("edge-2", "bbb", True, 30.0), "reported once"
    assert watch.conflicts(30.0) == ["edge-2"]
    assert watch.conflicts(331.0) == [], "forgotten hold_s after the last evidence"


def test_a_switch_back_to_an_instance_long_gone_is_a_restart_not_a_conflict():
    watch = ClaimWatch(window_s=60)
    watch.observe("edge-2", "aaa", True, 0.0)
    watch.observe("edge-2", "bbb", True, 10.0)
    assert not watch.observe("edge-2", "aaa", True, 200.0)
    assert watch.conflicts(200.0) == []

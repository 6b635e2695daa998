"""Which worker a step goes to: model holders first when free, then input holders, then load."""

from __future__ import annotations

from cluster.placement import Placement


def test_least_loaded_worker_without_history() -> None:
    placement = Placement(3)
    placement.load[0] = 2
    placement.load[1] = 1
    assert placement.pick([]) == 2


def test_step_follows_its_input_to_the_worker_holding_it() -> None:
    placement = Placement(2)
    placement.produced(1, ["out-a"])
    assert placement.pick(["out-a"]) == 1


def test_free_worker_holding_the_model_wins_over_the_input_holder() -> None:
    placement = Placement(2)
    placement.produced(0, ["loader-out"])
    placement.result(0, "loader-out", ["model-k"], held=[])
    placement.result(1, None, [], held=["model-k"])
    assert placement.pick(["loader-out"]) == 1
    assert placement.stats.placements_with_models == 1
    assert placement.stats.model_hits == 1
    assert placement.stats.hit_rate == 1.0


def test_busy_model_holder_is_not_waited_for() -> None:
    placement = Placement(2)
    placement.result(0, "loader-out", ["model-k"], held=["model-k"])
    placement.load[0] = 1
    assert placement.pick(["loader-out"]) == 1
    assert placement.stats.model_hits == 0
    assert placement.stats.hit_rate == 0.0


def test_every_needed_model_must_be_held() -> None:
    placement = Placement(2)
    placement.result(0, "model", ["unet-k"], held=["unet-k"])
    placement.result(0, "clip", ["clip-k"], held=["unet-k"])
    placement.result(1, None, [], held=["unet-k", "clip-k"])
    placement.load[1] = 0
    placement.load[0] = 0
    assert placement.pick(["model", "clip"]) == 1


def test_free_forgets_what_workers_hold() -> None:
    placement = Placement(2)
    placement.result(1, "model", ["unet-k"], held=["unet-k"])
    placement.forget_models()
    assert placement.held(1) == set()
    assert placement.pick(["model"]) == 0
    assert placement.stats.hit_rate == 0.0


def test_no_models_means_no_hit_rate() -> None:
    placement = Placement(1)
    placement.pick(["anything"])
    assert placement.stats.hit_rate is None

"""tuneserve_service.craft.fidelity: the record, its validation, cost and pruner resource, levels, and the
rank mapping that lets a warm start cross fidelities."""
from __future__ import annotations

import pytest

from tuneserve_service.craft.fidelity import (
    Fidelity,
    FidelityError,
    apply_fidelity,
    epoch_budget,
    fraction_ladder,
    highest_level,
    map_by_rank,
    resource,
    resource_steps,
    split_params,
)


def test_record_round_trip_and_overrides():
    f = Fidelity.from_dict({"epochs": 2, "data_fraction": 0.1, "classes": 4, "data_seed": 3})
    assert f == Fidelity(2, 0.1, 4, 3)
    assert f.to_dict() == {"epochs": 2, "data_fraction": 0.1, "classes": 4, "data_seed": 3}
    assert Fidelity().to_dict() == {"data_fraction": 1.0, "data_seed": 0}
    assert Fidelity.from_dict(None) == Fidelity()
    assert f.with_overrides({"epochs": 10, "data_fraction": 1}) == Fidelity(10, 1.0, 4, 3)
    assert f.with_overrides(None) is f
    assert Fidelity.from_dict({"epochs": 3.0}).epochs == 3


@pytest.mark.parametrize("raw, path", [
    ("x", "fidelity"),
    ({"epoch": 2}, "fidelity.epoch"),
    ({"epochs": 0}, "fidelity.epochs"),
    ({"epochs": True}, "fidelity.epochs"),
    ({"data_fraction": 0}, "fidelity.data_fraction"),
    ({"data_fraction": 1.01}, "fidelity.data_fraction"),
    ({"data_fraction": float("nan")}, "fidelity.data_fraction"),
    ({"classes": 1}, "fidelity.classes"),
    ({"data_seed": -1}, "fidelity.data_seed"),
])
def test_errors_name_the_field(raw, path):
    with pytest.raises(FidelityError) as e:
        Fidelity.from_dict(raw)
    assert e.value.path == path and str(e.value).startswith(path + ": ")


def test_cost_share_label():
    assert Fidelity(2, 0.1).cost() == pytest.approx(0.2)
    assert Fidelity(10, 0.5, 2).cost(num_classes=10) == pytest.approx(1.0)
    assert Fidelity(data_fraction=0.5).cost(default_epochs=4) == 2.0
    with pytest.raises(FidelityError):
        Fidelity().cost()
    with pytest.raises(FidelityError):
        Fidelity(2, 1.0, 3).share()
    assert Fidelity(2, 0.1, 4).label(10) == "2 epochs, 10% data, 4 of 10 classes"
    assert Fidelity(1, 0.025).label() == "1 epoch, 2.5% data"
    assert Fidelity().label() == "100% data"
    assert Fidelity(2, 1.0).is_full_data() and not Fidelity(2, 0.5).is_full_data()
    assert Fidelity(2, 0.1, data_seed=1).level == Fidelity(2, 0.1, data_seed=2).level


def test_resource_for_pruners():
    f = Fidelity(9, 0.25)
    assert resource(f, 4) == 1.0
    assert resource(Fidelity(9, 0.5, 5), 2, num_classes=10) == 0.5
    assert [resource_steps(f, s, unit=0.25) for s in (1, 2, 3)] == [1, 2, 3]
    assert resource_steps(Fidelity(9, 1.0), 2, unit=0.25) == 8
    assert resource_steps(Fidelity(9, 0.01), 1, unit=0.25) == 1      # never 0 once reported
    with pytest.raises(FidelityError):
        resource_steps(f, 1, unit=0)


def test_fraction_ladder():
    assert fraction_ladder(1 / 9, 3) == pytest.approx([1 / 9, 1 / 3, 1.0])
    assert fraction_ladder(0.1, 3) == pytest.approx([0.1, 0.3, 0.9, 1.0])
    assert fraction_ladder(1.0) == [1.0]
    with pytest.raises(FidelityError):
        fraction_ladder(0.1, 1)
    with pytest.raises(FidelityError):
        fraction_ladder(0.0)


def test_highest_level():
    levels = [Fidelity(2, 0.1), Fidelity(10, 1.0), Fidelity(20, 0.5), Fidelity(30, 1.0, 2)]
    assert highest_level(levels) == (10, 1.0, None)
    assert highest_level([Fidelity(2, 0.1), Fidelity(None, 0.1)]) == (2, 0.1, None)
    assert highest_level([]) is None


def test_split_and_apply_params():
    hyper, f = split_params({"lr": 0.1, "epochs": 3, "data_fraction": 0.2, "data_seed": 5})
    assert hyper == {"lr": 0.1} and f == Fidelity(3, 0.2, None, 5)
    assert apply_fidelity({"lr": 0.1, "epochs": 1}, Fidelity(10, 1.0)) == {"lr": 0.1, "epochs": 10}
    assert apply_fidelity({"lr": 0.1}, Fidelity(None, 0.5, 3, 2)) == {
        "lr": 0.1, "data_fraction": 0.5, "classes": 3, "data_seed": 2}
    with pytest.raises(FidelityError) as e:
        split_params({"data_fraction": 2})
    assert e.value.path == "params.data_fraction"


def test_map_by_rank():
    assert map_by_rank([3.0, 1.0, 2.0], [10, 20, 30, 40]) == pytest.approx([35.0, 15.0, 25.0])
    assert map_by_rank([1.0, 1.0, 2.0], [10, 20, 30, 40]) == pytest.approx([20.0, 20.0, 35.0])  # ties share
    assert map_by_rank([3.0, 1.0], []) == [3.0, 1.0]
    assert map_by_rank([], [1.0]) == []


def test_the_epoch_budget_is_the_records_else_an_epochs_parameters():
    assert epoch_budget({"lr": 0.1, "epochs": 6}) == 6
    assert epoch_budget({"train.max_epochs": 12.0}) == 12            # a dotted name's leaf; a whole float
    assert epoch_budget({"epochs": 6}, {"epochs": 2, "data_fraction": 0.1}) == 2   # a managed study's own
    assert epoch_budget({"epochs": 6}, {"data_fraction": 0.1}) == 6
    assert epoch_budget({"lr": 0.1}) is None
    assert epoch_budget({"epochs": 2.5}) is None                     # not a whole number of epochs
    assert epoch_budget({"epochs": True}) is None
    assert epoch_budget({"epochs": 0}) is None
    assert epoch_budget({"epochs": "6"}) is None
    assert epoch_budget({"epoch_size": 100}) is None                 # not an epochs name

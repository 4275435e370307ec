"""Trial tasks, recurrent networks, RFLO against exact gradients, BPTT learning, and the untrained control."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurofit.models.recurrent import RecurrentNet
from neurofit.models.train_recurrent import (
    RecurrentSpec,
    load_recurrent,
    local_gradients,
    make_optimiser,
    masked_cross_entropy,
    save_recurrent,
    train_recurrent,
    trajectories,
)
from neurofit.models.trial_tasks import make_trial_task
from neurofit.trial_features import task_condition, task_durations


def test_delayed_response_lays_the_periods_of_000006():
    task = make_trial_task("delayed_response", {"strengths": [0.5, 1.0]})
    assert task.conditions == ["left 0.5", "left 1", "right 0.5", "right 1"]
    durations = {"fixation": 500, "sample": 1000, "delay": 1500, "response": 500}
    trial = task.trial("right 0.5", durations, dt_ms=50)
    assert len(trial.ob) == 70 and trial.choice == 2
    sample = trial.period == "sample"
    assert sample.sum() == 20 and np.allclose(trial.ob[sample, 2], 0.5) and np.allclose(trial.ob[sample, 1], 0)
    response = trial.period == "response"
    assert (trial.gt[response] == 2).all() and (trial.gt[~response] == 0).all()
    assert (trial.ob[response, 3] == 1).all() and (trial.ob[response, 0] == 0).all()
    # Loss weights: half on the decision period, half on the rest.
    assert np.isclose(trial.mask[response].sum(), 0.5) and np.isclose(trial.mask.sum(), 1.0)


def test_other_tasks_and_their_errors():
    decision = make_trial_task("perceptual_decision")
    trial = decision.trial("left 0.512", decision.durations_ms, 20)
    stim = trial.period == "stimulus"
    assert (trial.ob[stim, 1] > trial.ob[stim, 2]).all() and trial.choice == 1
    dms = make_trial_task("delayed_match_to_sample")
    assert dms.trial("B B", dms.durations_ms, 50).choice == 1 and dms.trial("A C", dms.durations_ms, 50).choice == 2
    batch = dms.batch(400, 50, np.random.default_rng(0))
    assert 0.4 < (batch["choice"] == 1).mean() < 0.6  # half the trials match, as in neurogym
    with pytest.raises(ValueError, match="unknown setting"):
        make_trial_task("delayed_response", {"delay_ms": 3})
    with pytest.raises(ValueError, match="not a trial task"):
        make_trial_task("objects")
    with pytest.raises(ValueError, match="not one of the task's"):
        decision.trial("up 0.5", decision.durations_ms, 20)


def test_epochs_of_a_dataset_become_task_durations():
    task = make_trial_task("delayed_response")
    periods = {"sample": "pole_in_time", "delay": "pole_out_time", "response": "cue_start_time"}
    epochs = {"pole_in_time": -2.5, "pole_out_time": -1.5, "cue_start_time": 0.0}
    durations, start = task_durations(task, periods, epochs, (-3.0, 1.5))
    assert start == -3.0 and durations == pytest.approx({"fixation": 500, "sample": 1000, "delay": 1500,
                                                         "response": 1500})
    # A window starting after the sample: the model's trial starts earlier, with its own fixation period.
    durations, start = task_durations(task, periods, epochs, (-2.0, 1.0))
    assert start == pytest.approx(-3.0) and durations["fixation"] == pytest.approx(500)
    with pytest.raises(ValueError, match="has no time"):
        task_durations(task, {**periods, "sample": "go_time"}, epochs, (-3.0, 1.5))
    with pytest.raises(ValueError, match="not in task order"):
        task_durations(task, periods, {**epochs, "pole_out_time": -2.8}, (-3.0, 1.5))
    assert task_condition("lick left | 0.5", {"lick left": "left"}) == "left 0.5"


@pytest.mark.parametrize("architecture,dale", [("vanilla", False), ("vanilla", True), ("gru", False),
                                               ("lstm", False)])
def test_networks_have_named_layers_over_time(architecture, dale):
    net = RecurrentNet(architecture, n_inputs=4, n_outputs=3, hidden=10, dale=dale)
    out = net(torch.zeros(7, 2, 4))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"input": (7, 2, 10), "recurrent": (7, 2, 10),
                                                            "readout": (7, 2, 3)}
    if dale:
        weight = net.recurrent_weight()
        assert (weight[:, :8] >= 0).all() and (weight[:, 8:] <= 0).all()  # 80 % excitatory columns
        assert (out["recurrent"] >= 0).all()


def test_rflo_equals_the_exact_gradient_where_it_should():
    """With the feedback set to W_out^T and a one-step trial (no recurrent history), RFLO's local updates are the
    exact gradient; the readout's delta rule is exact for any trial length."""
    torch.manual_seed(0)
    net = RecurrentNet("vanilla", 3, 3, hidden=6, alpha=0.5)
    ob = torch.randn(1, 4, 3)
    gt = torch.randint(0, 3, (1, 4))
    mask = torch.full((1, 4), 1.0)
    local_gradients(net, ob, gt, mask, net.readout.weight.detach().T.clone())
    rflo = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    masked_cross_entropy(net(ob)["readout"], gt, mask).backward()
    for name, p in net.named_parameters():
        assert torch.allclose(rflo[name], p.grad, atol=1e-6), name
    assert torch.allclose(rflo["recurrent.weight"], torch.zeros(6, 6))  # no history in one step
    long_ob, long_gt = torch.randn(12, 4, 3), torch.randint(0, 3, (12, 4))
    long_mask = torch.full((12, 4), 1 / 12)
    net.zero_grad()
    local_gradients(net, long_ob, long_gt, long_mask, torch.randn(6, 3))
    delta_rule = net.readout.weight.grad.clone()
    assert net.recurrent.weight.grad.abs().sum() > 0  # longer trials: the eligibility traces carry history
    net.zero_grad()
    masked_cross_entropy(net(long_ob)["readout"], long_gt, long_mask).backward()
    assert torch.allclose(delta_rule, net.readout.weight.grad, atol=1e-6)


@pytest.mark.parametrize("dale", [False, True])
def test_eprop_is_the_gradient_with_the_recurrent_path_cut(dale):
    """Murray's and Bellec's approximation, for any trial length: symmetric e-prop (no feedback matrix given: the
    readout's W_out^T) updates by the exact gradient of the loss through a network whose recurrent input
    ``W h_{t-1}`` is held fixed (only the leak ``(1 - a) h_{t-1}`` carries credit back in time). A wrong trace (leak,
    pre-synaptic time, phi') or learning signal fails this; RFLO with its feedback set to W_out^T is the same."""
    torch.manual_seed(0)
    net = RecurrentNet("vanilla", 3, 3, hidden=6, alpha=0.3, dale=dale)
    ob, gt, mask = torch.randn(15, 4, 3), torch.randint(0, 3, (15, 4)), torch.rand(15, 4) / 15
    local_gradients(net, ob, gt, mask)
    eprop = {name: p.grad.clone() for name, p in net.named_parameters()}
    net.zero_grad()
    local_gradients(net, ob, gt, mask, net.readout.weight.detach().T.clone())
    assert all(torch.equal(eprop[name], p.grad) for name, p in net.named_parameters())
    net.zero_grad()
    weight, drive = net.recurrent_weight(), net.input(ob)
    h, states = torch.zeros(4, 6), []
    for t in range(len(ob)):
        h = (1 - net.alpha) * h + net.alpha * net.phi(h.detach() @ weight.T + drive[t])
        states.append(h)
    masked_cross_entropy(net.readout(torch.stack(states)), gt, mask).backward()
    for name, p in net.named_parameters():
        assert torch.allclose(eprop[name], p.grad, atol=1e-6), name
    assert eprop["recurrent.weight"].abs().sum() > 0


RFLO_PAPER = {"learning_rule": "rflo", "hidden": 32, "steps": 300, "seed": 1, "n_test": 128,
              "task_settings": {"strengths": [0.5, 1.0]}}  # config/paper/trials_delayed_response.yaml's rnn_rflo


def test_rflo_learns_the_delayed_response_within_the_paper_budget():
    """The paper config's RFLO network (plain gradient steps, its default) reports the held-out choice well above
    chance and above the untrained network of the same seed; under Adam it stayed at chance (0.51)."""
    spec = RecurrentSpec.from_config(RFLO_PAPER)
    assert (spec.optimizer, spec.lr, spec.local_lr) == ("sgd", 0.5, None)
    _, perf = train_recurrent(spec)
    _, control = train_recurrent(RecurrentSpec.from_config({**RFLO_PAPER, "learning_rule": "none"}))
    assert perf["chance"] == 0.5 and perf["accuracy"] > 0.9
    assert perf["accuracy"] > control["accuracy"] + 0.25 and perf["test_loss"] < control["test_loss"] / 5
    assert perf["optimizer"] == "sgd" and "optimizer" not in control


def test_eprop_learns_the_delayed_response_within_the_paper_budget():
    """The paper config's e-prop network (RFLO's settings, symmetric feedback) reports the held-out choice above 0.9
    (0.96 measured) and well above the untrained network of the same seed."""
    spec = RecurrentSpec.from_config({**RFLO_PAPER, "learning_rule": "eprop"})
    assert (spec.optimizer, spec.lr) == ("sgd", 0.5)
    _, perf = train_recurrent(spec)
    _, control = train_recurrent(RecurrentSpec.from_config({**RFLO_PAPER, "learning_rule": "none"}))
    assert perf["learning_rule"] == "eprop" and perf["accuracy"] > 0.9
    assert perf["accuracy"] > control["accuracy"] + 0.25 and perf["test_loss"] < control["test_loss"] / 2


def test_rflo_under_adam_stays_at_chance():
    """The cause: Adam gives each weight a step of about lr whatever its pseudo-gradient, so the small, misdirected
    local updates rewrite the recurrent matrix as fast as the readout learns and the sample is lost over the delay."""
    net, perf = train_recurrent(RecurrentSpec.from_config({**RFLO_PAPER, "optimizer": "adam", "lr": 0.01}))
    initial = RecurrentSpec.from_config(RFLO_PAPER).build()
    moved = float((net.recurrent.weight - initial.recurrent.weight).detach().norm())
    # Moved by about the matrix's own norm (6.0 vs 5.8 measured; plain steps move it by 2.7, BPTT's Adam by 3.7).
    assert perf["accuracy"] < 0.6 and moved > 0.8 * float(initial.recurrent.weight.detach().norm())


def test_bptt_learns_the_delayed_response_and_the_untrained_control_does_not(tmp_path):
    trained, perf = train_recurrent(RecurrentSpec.from_config({"hidden": 32, "steps": 300, "n_test": 128}))
    _, control = train_recurrent(RecurrentSpec.from_config({"hidden": 32, "learning_rule": "none", "n_test": 128}))
    assert perf["accuracy"] > 0.9 and control["accuracy"] < 0.75 and perf["chance"] == 0.5
    assert control["steps"] == 0 and perf["test_loss"] < control["test_loss"]
    spec = RecurrentSpec.from_config({"hidden": 32})
    save_recurrent(trained, spec, perf, tmp_path / "w.pt", tmp_path / "performance.json")
    loaded, loaded_spec = load_recurrent(tmp_path / "w.pt")
    task = loaded_spec.make_task()
    durations = task.durations_ms
    a = trajectories(trained, task, ["left", "right"], durations, 50.0)
    b = trajectories(loaded, task, ["left", "right"], durations, 50.0)
    assert a["recurrent"].shape == (2, 80, 32) and np.allclose(a["recurrent"], b["recurrent"])


def test_bad_model_settings_are_named():
    for rule in ("rflo", "eprop"):
        with pytest.raises(ValueError, match=f"{rule} needs architecture: vanilla"):
            RecurrentSpec.from_config({"architecture": "gru", "learning_rule": rule})
    with pytest.raises(ValueError, match="dale: true needs architecture: vanilla"):
        RecurrentSpec.from_config({"architecture": "lstm", "dale": True}).build()
    with pytest.raises(ValueError, match="unknown key"):
        RecurrentSpec.from_config({"epochs": 3})
    with pytest.raises(ValueError, match="choose one of"):
        RecurrentSpec.from_config({"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="local_lr .* needs learning_rule: rflo or eprop"):
        RecurrentSpec.from_config({"learning_rule": "bptt", "local_lr": 0.1})


def test_each_rule_gets_its_optimiser_and_rflo_its_local_rate():
    bptt, rflo = RecurrentSpec.from_config({}), RecurrentSpec.from_config({"learning_rule": "rflo", "local_lr": 0.1})
    assert (bptt.optimizer, bptt.lr, rflo.optimizer, rflo.lr) == ("adam", 0.01, "sgd", 0.5)
    net = rflo.build()
    readout, local = make_optimiser(rflo, net).param_groups
    assert isinstance(make_optimiser(rflo, net), torch.optim.SGD) and (readout["lr"], local["lr"]) == (0.5, 0.1)
    assert {id(p) for p in readout["params"]} == {id(net.readout.weight), id(net.readout.bias)}
    assert len(local["params"]) == 3  # input weight and bias, recurrent weight
    (group,) = make_optimiser(bptt, bptt.build()).param_groups
    assert isinstance(make_optimiser(bptt, bptt.build()), torch.optim.Adam) and group["lr"] == 0.01


def test_the_simulator_names_the_networks_layers():
    from neurofit import simulate_trials
    from neurofit.models import recurrent

    assert simulate_trials.RECURRENT_LAYERS == recurrent.RECURRENT_LAYERS

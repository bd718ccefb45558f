"""Search spaces (YAML, TOML, JSON; nested or dotted), every malformed one refused by field, and the
parts of a sweep that need no Ray: concurrency, ASHA's rungs, trial results, the best config file."""

from __future__ import annotations

import csv
import io
import json

import pytest

from distill.cli import main
from distill.presets import preset_config
from distill.ray_layer.sweep import plan_concurrency
from distill.ray_layer.sweep_tune import asha_rungs, trial_number
from distill.ray_layer.train import plan_workers
from distill.sweep_definition import SweepError
from distill.sweep_results import (
    TrialOutcome,
    best_config_toml,
    objective,
    objective_plot_png,
    pick_best,
    results_csv,
    table,
)
from distill.sweep_space import SearchSpace, SpaceError, default_space, load_space, merge, overrides
from distill.training_run import resolve_config

YAML = """
loss:
  mrstft_weight: {loguniform: [0.01, 1.0]}
  kl_warmup_steps: {choice: [100, 500]}
train.batch_size: {randint: [4, 8]}
model.dropout: 0.1
"""
TOML = """
[loss]
mrstft_weight = { loguniform = [0.01, 1.0] }
kl_warmup_steps = { choice = [100, 500] }
[train]
batch_size = { randint = [4, 8] }
[model]
dropout = 0.1
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_toml_and_json_spaces_read_the_same(tmp_path):
    spaces = [load_space(_write(tmp_path, "s.yaml", YAML)), load_space(_write(tmp_path, "s.toml", TOML))]
    spaces.append(load_space(_write(tmp_path, "s.json", json.dumps(spaces[0].to_dict()))))
    assert spaces[0] == spaces[1] == spaces[2]
    space = spaces[0]
    assert [d.field for d in space.searched] == ["loss.mrstft_weight", "loss.kl_warmup_steps", "train.batch_size"]
    assert [d.kind for d in space.dimensions] == ["loguniform", "choice", "randint", "fixed"]
    assert space.dimensions[0].log_scale and not space.dimensions[2].log_scale
    space.check(preset_config("tiny"))  # every value it can draw makes a valid config
    assert SearchSpace.from_dict(space.to_dict()) == space  # what sweep.json stores reads back


def test_default_space_searches_the_loss_weights_log_uniformly():
    space = default_space()
    assert [d.field for d in space.dimensions] == ["loss.mrstft_weight", "loss.if_weight", "loss.kl_beta",
                                                   "loss.free_bits"]
    assert all(d.kind == "loguniform" and d.values[0] > 0 for d in space.dimensions)
    defaults = preset_config("balanced").loss
    for dim in space.dimensions:  # the presets' own values lie inside every range
        assert dim.values[0] < getattr(defaults, dim.field.split(".")[1]) < dim.values[1]
    assert default_space(include_lr=True).dimensions[-1].field == "train.lr"
    for name in ("tiny", "balanced", "conservative", "aggressive"):
        default_space(include_lr=True).check(preset_config(name))


@pytest.mark.parametrize("text, expected", [
    ("loss:\n  kl_bta: {loguniform: [0.1, 1]}\n", ["unknown field 'loss.kl_bta'", "kl_beta"]),
    ("los.kl_beta: 0.1\n", ["unknown field 'los.kl_beta'", "loss"]),
    ("prepare.chunk_seconds: {uniform: [1, 2]}\n", ["prepare.chunk_seconds cannot be searched", "cache"]),
    ("run.eval_chunks: {choice: [2, 4]}\n", ["run.eval_chunks cannot be searched", "evaluation"]),
    ("train.epochs: {randint: [2, 9]}\n", ["train.epochs cannot be searched", "--epochs"]),
    ("loss.kl_beta: {normal: [0, 1]}\n", ["loss.kl_beta", "one of"]),
    ("loss.kl_beta: {loguniform: [0.1]}\n", ["loss.kl_beta", "[low, high]"]),
    ("loss.kl_beta: {loguniform: [1, 0.1]}\n", ["loss.kl_beta", "low < high"]),
    ("loss.kl_beta: {loguniform: [0, 0.1]}\n", ["loss.kl_beta", "low > 0"]),
    ("loss.kl_beta: {uniform: [-1, 1]}\n", ["loss.kl_beta", ">= 0"]),
    ("train.batch_size: {uniform: [4, 16]}\n", ["train.batch_size", "whole number"]),
    ("train.batch_size: {randint: [4.5, 16]}\n", ["train.batch_size", "whole numbers"]),
    ("loss.synthesis: {choice: [pghi, nope]}\n", ["loss.synthesis", "nope"]),
    ("loss.free_bits: {choice: [0.1, 0.1]}\n", ["loss.free_bits", "twice"]),
    ("loss: 3\n", ["loss is a section"]),
    ("loss.free_bits: 0.1\n", ["nothing to search"]),
    ("- just\n- a list\n", ["expected a table of fields"]),
    ("loss: {kl_beta: [unclosed\n", ["not valid YAML"]),
])
def test_malformed_spaces_are_refused_naming_the_file_and_field(tmp_path, text, expected):
    path = _write(tmp_path, "space.yaml", text)
    with pytest.raises(SpaceError) as caught:
        load_space(path).check(preset_config("tiny"), str(path))
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for part in expected:
        assert part in message


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    space = load_space(_write(tmp_path, "s.yml", "loss.kl_beta: {loguniform: [1e-5, 1e-2]}\nloss.free_bits: 5e-2\n"))
    assert space.dimensions[0].values == (1e-5, 1e-2) and space.dimensions[1].values == (0.05,)


def test_space_files_need_a_known_format(tmp_path):
    with pytest.raises(SpaceError, match="yaml, .yml, .toml or .json"):
        load_space(_write(tmp_path, "space.txt", "loss.kl_beta = 1"))
    with pytest.raises(SpaceError, match="not valid TOML"):
        load_space(_write(tmp_path, "space.toml", "[loss\n"))
    with pytest.raises(SpaceError, match="cannot read"):
        load_space(tmp_path / "missing.yaml")


def test_overrides_nest_dotted_fields_and_merge_keeps_the_base():
    nested = overrides({"loss.kl_beta": 0.01, "loss.free_bits": 0.1, "train.lr": 1e-3})
    assert nested == {"loss": {"kl_beta": 0.01, "free_bits": 0.1}, "train": {"lr": 1e-3}}
    base = {"train": {"epochs": 3, "lr": 5e-4}, "run": {"eval_chunks": 2}}
    assert merge(base, nested) == {"train": {"epochs": 3, "lr": 1e-3}, "run": {"eval_chunks": 2},
                                   "loss": {"kl_beta": 0.01, "free_bits": 0.1}}
    assert base["train"]["lr"] == 5e-4  # not changed in place


def test_the_cli_refuses_a_malformed_space_before_preparing_anything(tmp_path, example_dir, capsys):
    import shutil

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(example_dir / "kick.wav", folder / "kick.wav")
    space = _write(tmp_path, "space.toml", "[loss]\nkl_beta = { loguniform = [0.0, 1.0] }\n")
    assert main(["sweep", str(folder), "--space", str(space)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("distill: error: ") and "loss.kl_beta" in err and "space.toml" in err
    assert "Traceback" not in err
    for argv, message in ((["--resume"], "--resume needs --name"),
                          (["--resume", "--name", "nope"], "no sweep here to resume"),
                          (["--resume", "--name", "x", "--trials", "3"], "leave out --trials"),
                          (["--trials", "0"], "--trials must be at least 1"),
                          (["--name", "../up"], "sweep name"),
                          (["--config", str(space)], "space.toml: loss.kl_beta is a single value")):
        assert main(["sweep", str(folder), *argv]) == 1
        assert message in capsys.readouterr().err
    assert main(["sweep", str(folder), "--space", str(space), "--json"]) == 1
    assert "loss.kl_beta" in json.loads(capsys.readouterr().out)["error"]
    assert not (folder / ".distill").exists()  # nothing prepared, no sweep folder


def test_concurrency_fits_the_machine():
    # A 2-CPU laptop: one trial at a time by default; asked for more, as many as fit beside Ray Data.
    assert plan_concurrency(8, None, 1, False, 2, 0, False) == (1, None)
    count, note = plan_concurrency(8, 6, 1, False, 2, 0, False)
    assert count == 3 and "running 3 at a time" in note
    assert plan_concurrency(8, 2, 1, False, 2, 0, False) == (2, None)
    assert plan_concurrency(8, None, 1, False, 16, 0, False) == (7, None)  # two CPUs of threads each
    assert plan_concurrency(3, None, 1, False, 16, 0, False) == (3, None)  # never more than the trials
    assert plan_concurrency(8, None, 2, True, 16, 4, False) == (2, None)  # GPUs: two 2-GPU trials
    assert plan_concurrency(8, 12, 1, True, 64, 8, True) == (8, None)  # a cluster: as asked (autoscaling)
    count, note = plan_concurrency(8, 3, 1, True, 16, 2, False)
    assert count == 2 and "2 GPUs" in note
    with pytest.raises(SweepError, match="GPU"):
        plan_concurrency(8, None, 1, True, 16, 0, False)
    # ... and the workers of those trials leave one CPU to Ray Data between them.
    for runs in (1, 2, 3):
        plan = plan_workers(1, False, 8, 100, 10, 2, False, runs=runs, driver_cpus=0.01)
        assert runs * (plan.cpus_per_worker + 0.01) <= 1.0 + 1e-9 and plan.threads == max(1, 2 // runs)


def test_asha_cuts_only_before_the_last_epoch():
    assert asha_rungs(1) is None  # nothing to compare before the end
    assert asha_rungs(2) == (1, 1)
    assert asha_rungs(10) == (2, 9)
    assert asha_rungs(150) == (10, 149)
    assert trial_number("a1b2c_00002") == 3


def _outcome(number, score, status="completed", **params):
    return TrialOutcome(f"t_{number - 1:05d}", number, {"loss.kl_beta": 1e-3, "loss.mrstft_weight": 0.1, **params},
                        status, epochs=3, val_mrstft=score, best_epoch=2 if score else None)


def test_trials_are_judged_by_the_checkpoint_they_keep():
    rows = [{"epoch": 1, "val_mrstft": 5.0, "best": True}, {"epoch": 2, "val_mrstft": 4.0, "best": True},
            {"epoch": 3, "val_mrstft": 3.5, "best": False}]  # epoch 3 scored better but is not kept
    assert objective(rows) == (4.0, 2)
    assert objective([{"epoch": 1, "val_mrstft": 6.0}, {"epoch": 2, "val_mrstft": 5.5}]) == (5.5, 2)
    assert objective([{"epoch": 1, "val_mrstft": None}]) == (None, None)
    outcomes = [_outcome(1, 4.0), _outcome(2, 3.0, "stopped_early"), _outcome(3, None, "error"),
                _outcome(4, 3.0)]
    best = pick_best(outcomes)
    assert best.number == 2  # ties go to the earlier trial
    lines = table(outcomes, ["loss.kl_beta"], best).splitlines()
    assert lines[1].startswith("*  2") and "stopped_early" in lines[1] and "error" in lines[-1]
    rows = list(csv.DictReader(io.StringIO(results_csv(outcomes, ["loss.kl_beta", "loss.mrstft_weight"]).decode())))
    assert [r["trial"] for r in rows] == ["1", "2", "3", "4"] and float(rows[1]["val_mrstft"]) == 3.0
    assert rows[0]["loss.kl_beta"] == "0.001" and rows[2]["val_mrstft"] == ""
    png = objective_plot_png(outcomes, default_space().searched, best)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_best_config_is_a_config_file_train_accepts(tmp_path, example_dir):
    config = merge({"train": {"epochs": 3}}, overrides({"loss.kl_beta": 2e-3, "loss.if_weight": 0.5}))
    text = best_config_toml("tiny", config, ["The best trial of sweep s", "second line"])
    assert text.startswith("# The best trial of sweep s\n# second line\n")
    path = _write(tmp_path, "best.toml", text)
    cfg = resolve_config(example_dir, None, str(path))
    assert cfg.preset == "tiny" and cfg.loss.kl_beta == 2e-3 and cfg.loss.if_weight == 0.5
    assert cfg.train.epochs == 3

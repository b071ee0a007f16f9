"""Every shipped config, preset and old-layout example resolves to a valid config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairseq2_preference.cli import main
from fairseq2_preference.config.files import presets
from fairseq2_preference.errors import PreferenceConfigError

from helpers import REPO

EXAMPLES = sorted((REPO / "example_configurations").rglob("*.yaml"))
LEGACY_DIR = REPO / "example_configurations" / "fairseq2_0.4_layout"
LEGACY = sorted(LEGACY_DIR.glob("*.yaml"))
OLD_DPO_FROM_CHECKPOINT = LEGACY_DIR / "dpo_from_checkpoint.yaml"


def dump(capsys: pytest.CaptureFixture[str], command: str, *args: str) -> dict:  # type: ignore[type-arg]
    main(["lm", command, "--dump-config", "--no-rich", *args])
    out = capsys.readouterr().out
    return yaml.safe_load(out[out.index("model:") :])  # type: ignore[no-any-return]


def command_for(path: Path) -> str:
    return "instruction_finetune" if "sft" in path.stem else "preference_finetune"


def test_every_example_is_covered() -> None:
    names = {p.name for p in EXAMPLES}
    for expected in ("llama3_1_8b_instruct_dpo.yaml", "llama3_1_8b_dpo_from_sft.yaml",
                     "llama3_1_8b_instruct_simpo.yaml", "llama3_1_8b_orpo.yaml",
                     "llama3_1_8b_instruct_cpo.yaml", "llama3_1_8b_sft.yaml",
                     "tiny_dpo_cpu.yaml", "tiny_sft_cpu.yaml",
                     "dpo_llama3_1_8b_lora_1gpu.yaml", "llama3_1_8b_instruct_kto.yaml",
                     "tiny_online_dpo_cpu.yaml",
                     "llama3_1_8b_instruct_online_dpo.yaml",
                     "llama3_1_8b_instruct_online_dpo_lora_1gpu.yaml"):  # fmt: skip
        assert expected in names
    assert {p.stem for p in LEGACY} == {"dpo", "dpo_from_checkpoint", "simpo", "orpo", "cpo"}


ONLINE = [p for p in EXAMPLES if "online" in p.stem]


@pytest.mark.parametrize("path", ONLINE, ids=lambda p: str(p.relative_to(REPO)))
def test_online_configs_and_their_stage_configs_are_valid(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``preference_iterate`` configs, with the paths their command gives; the
    stage configs they name (beside them) with the stage overrides."""
    from fairseq2_preference.online.config import load_config

    paths = ["policy.checkpoint_dir=/runs/sft/checkpoints", "prompts.path=/p",
             "held_out.path=/p", "eval_pairs.path=/e"]  # fmt: skip
    config = load_config(path, paths)
    assert config.train.config_file is not None
    train = Path(config.train.config_file)
    assert train.parent == path.parent and train.is_file()
    dumped = dump(
        capsys, "preference_finetune", "--config-file", str(train), "--config",
        *config.overrides, *config.train.overrides,
    )  # fmt: skip
    assert dumped["tokenizer"]["name"] == config.overrides[0].split("=")[1]
    if config.policy.name == "last_checkpoint":
        with pytest.raises(PreferenceConfigError, match=r"set `policy\.checkpoint_dir`"):
            load_config(path, paths[1:])


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if p not in ONLINE], ids=lambda p: str(p.relative_to(REPO))
)
def test_example_configs_are_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dump(capsys, command_for(path), "--config-file", str(path))
    raw = yaml.safe_load(path.read_text())
    if "criterion" in raw and isinstance(raw["criterion"], dict):
        assert config["criterion"]["name"] == raw["criterion"]["name"]


@pytest.mark.parametrize(
    ("command", "preset"),
    [(c, p) for c in ("preference_finetune", "instruction_finetune") for p in presets(c)],
)
def test_presets_are_valid(command: str, preset: str, capsys: pytest.CaptureFixture[str]) -> None:
    config = dump(capsys, command, "--preset", preset)
    assert config["model"]["config_overrides"] == {"dropout_p": 0.0}


def test_preset_values_and_file_overlay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = dump(capsys, "preference_finetune", "--preset", "llama3_1_instruct_constant_lr")
    assert config["lr_scheduler"]["config"]["final_lr_scale"] == 1.0
    overlay = tmp_path / "mine.yaml"
    overlay.write_text("lr_scheduler:\n  config: {num_warmup_steps: 50}\ncriterion: {name: ipo}\n")
    config = dump(capsys, "preference_finetune", "--preset", "llama3_1_instruct_constant_lr",
                  "--config-file", str(overlay))  # fmt: skip
    assert config["lr_scheduler"]["config"]["final_lr_scale"] == 1.0  # from the preset
    assert config["lr_scheduler"]["config"]["num_warmup_steps"] == 50  # from the file
    assert config["criterion"]["name"] == "ipo"
    assert config["model"]["config_overrides"] == {"dropout_p": 0.0}


def test_old_layout_translation(capsys: pytest.CaptureFixture[str]) -> None:
    config = dump(
        capsys, "preference_finetune", "--config-file", str(OLD_DPO_FROM_CHECKPOINT)
    )  # dpo_from_checkpoint
    assert config["model"]["name"] == "checkpoint_step_1000"
    assert config["reference_model"]["name"] == "checkpoint_step_1000"
    assert config["reference_model"]["dtype"] == "bfloat16"  # the old reference_dtype
    assert config["tokenizer"]["name"] == "llama3_1_8b_instruct"  # checkpoints carry none
    assert (
        config["common"]["assets"]["prev_checkpoint_dir"] == "/checkpoint/me/runs/sft/checkpoints"
    )
    assert config["dataset"]["max_num_tokens"] == 16384  # 0.4: 8192 = pairs × longest
    assert config["trainer"]["activation_checkpointing"]["mode"] == "layerwise"
    assert config["optimizer"]["config"]["lr"] == 5.5e-06
    assert config["regime"]["num_steps"] == 5000
    assert config["criterion"] == {
        "name": "dpo",
        "config": {
            "nll_scale": 0.0,
            "beta": 0.1,
            "label_smoothing": 0.0,
            "length_normalization": False,
        },
    }


@pytest.mark.parametrize("name", ["simpo", "orpo", "cpo"])
def test_old_reference_free_configs(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = LEGACY_DIR / f"{name}.yaml"
    config = dump(capsys, "preference_finetune", "--config-file", str(path))
    old = yaml.safe_load(path.read_text())["criterion_config"]
    assert config["criterion"]["name"] == name
    assert config["reference_model"] is None
    for key, value in old.items():
        if key != "_type_":
            assert config["criterion"]["config"][key] == value


def test_old_layout_keys_without_modern_meaning_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (OLD_DPO_FROM_CHECKPOINT.read_text()
            .replace("reference_tensor_parallel_size: 1", "reference_tensor_parallel_size: 8")
            + "my_custom_knob: 3\n")  # fmt: skip
    bad = tmp_path / "old.yaml"
    bad.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "preference_finetune", "--dump-config", "--config-file", str(bad)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "`reference_tensor_parallel_size: 8`" in err
    assert "`my_custom_knob`: not a key of the old" in err

"""``PreferenceFinetuneRecipe``: fairseq2 builds the parts, the recipe wires them.

fairseq2 creates the gangs, the (FSDP/DDP-wrapped) policy, the reference model,
tokenizer, dataset, optimizer, scheduler, checkpointing and metric recorders
from the config; this class only adds what is specific to preference training:
the criterion, the data readers and the train/eval units.
"""

from __future__ import annotations

from typing import Any, cast

from fairseq2.logging import log
from fairseq2.models.clm import CausalLM
from fairseq2.nn import Embedding
from fairseq2.recipe.base import Recipe, RecipeContext
from fairseq2.recipe.composition import register_dataset, register_reference_model
from fairseq2.runtime.dependency import DependencyContainer
from fairseq2.task import Task
from fairseq2.utils.rng import use_deterministic
from fairseq2.utils.structured import StandardValueConverter
from torch.nn import Module
from typing_extensions import override

from fairseq2_preference.config.assets import register_user_assets
from fairseq2_preference.config.sections import (
    InstructionFinetuneConfig,
    PreferenceDatasetSection,
    PreferenceFinetuneConfig,
)
from fairseq2_preference.criteria import (
    UnpairedCriterion,
    create_criterion,
    criterion_kls,
    criterion_names,
    structure_criterion_config,
)
from fairseq2_preference.data import (
    LengthBatching,
    PreferenceDataset,
    ReadOptions,
    StaticBatching,
    StepGroupReader,
    UnpairedDataset,
    register_dataset_families,
)
from fairseq2_preference.data.size import epoch_steps, log_data_size, show_total_steps
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.checkpoints import use_checkpoint_chat_template
from fairseq2_preference.recipe.lora_model import prepare_lora_model
from fairseq2_preference.recipe.metrics import register_metric_descriptors
from fairseq2_preference.recipe.units import (
    PreferenceComputer,
    PreferenceEvalUnit,
    PreferenceTrainUnit,
    StepComputer,
    check_data_kind,
)
from fairseq2_preference.recipe.unpaired_units import UnpairedComputer
from fairseq2_preference.reference.setup import prepare_reference
from fairseq2_preference.reference.table import ReferenceTable
from fairseq2_preference.run.adapters import save_adapters_only
from fairseq2_preference.run.directory import check_run_directory
from fairseq2_preference.run.finite_guard import guard_training
from fairseq2_preference.run.log_masking import install_log_masking


class PreferenceFinetuneRecipe(Recipe):
    """``fairseq2 lm preference_finetune``: DPO and friends on preference pairs."""

    @override
    def register(self, container: DependencyContainer) -> None:
        install_log_masking()  # also when run through `fairseq2.recipe.run()`
        register_dataset_families(container)
        register_reference_model(container, "reference_model")
        register_user_assets(container)
        register_dataset(container, "valid_dataset")
        register_metric_descriptors(container, (criterion_kls(n) for n in criterion_names()))

    @override
    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(PreferenceFinetuneConfig)

        check_run_directory(
            context.output_dir,
            cast(dict[str, Any], StandardValueConverter().unstructure(config)),
            context.get_checkpoint_manager().maybe_get_last_step_number(),
            is_writer=context.gangs.root.rank == 0,
        )

        check_vocabulary(context)
        if config.common.deterministic:
            use_deterministic(True, warn_only=True)

        name = config.criterion.name
        criterion_config = structure_criterion_config(name, config.criterion.config)
        criterion = create_criterion(name, criterion_config)
        log.info("Criterion '{}': {}", name, criterion_config)

        dataset = context.get_dataset_as(PreferenceDataset)  # type: ignore[type-abstract]
        pairs = dataset.schema.is_pairwise
        check_data_kind(criterion, pairs, bool(dataset.schema.labels))  # before any model
        unpaired = isinstance(criterion, UnpairedCriterion)
        if unpaired:
            dataset = UnpairedDataset(dataset)

        tokenizer = context.get_tokenizer()
        use_checkpoint_chat_template(tokenizer, config.tokenizer)
        section = config.dataset
        valid_budget = section.max_num_valid_tokens or section.max_num_tokens

        splits = {"train": (dataset, section.train_split)}
        valid_dataset = validation_dataset(context, config, dataset)
        if unpaired and valid_dataset is not None and valid_dataset is not dataset:
            valid_dataset = UnpairedDataset(valid_dataset)
        if valid_dataset is not None and section.valid_split is not None:
            splits["valid"] = (valid_dataset, section.valid_split)
        policy = context.get_data_parallel_model()
        reference = prepare_reference(
            context,
            config,
            criterion,
            splits,
            read_options(config, valid_budget, training=False),
            base=policy if config.lora is not None else None,
        )
        computer: StepComputer
        if isinstance(criterion, UnpairedCriterion):
            computer = UnpairedComputer(
                policy, reference.model, criterion, context.gangs.dp, reference.is_base
            )
        else:
            computer = PreferenceComputer(
                policy, reference.model, criterion, pairs, reference_is_base=reference.is_base
            )
        if config.lora is not None:
            save_adapters_only(policy)

        train_options = read_options(
            config, section.max_num_tokens, True, reference.tables.get("train")
        )
        regime = config.regime
        steps = epoch_steps(
            dataset, section.train_split, tokenizer, context.gangs, train_options, regime
        )
        log_data_size(dataset, section.train_split, context.gangs.dp.size, regime, steps)
        if regime.num_steps is None and regime.num_data_epochs is not None and steps:
            show_total_steps(context.progress_reporter, regime.num_data_epochs * steps)
        train_reader = dataset.create_reader(
            section.train_split, tokenizer, context.gangs, train_options
        )
        if unpaired:  # the step's KL reference point is taken over all its micro-batches
            train_reader = StepGroupReader(train_reader)

        valid_units, valid_readers = [], []
        if "valid" in splits:
            valid_dataset, valid_split = splits["valid"]
            valid_readers.append(
                valid_dataset.create_reader(
                    valid_split,
                    tokenizer,
                    context.gangs,
                    read_options(config, valid_budget, False, reference.tables.get("valid")),
                )
            )
            valid_units.append(PreferenceEvalUnit(computer))

        train_unit = guard_training(context, config, PreferenceTrainUnit(computer))
        return context.create_trainer(train_unit, train_reader, valid_units, valid_readers)

    @override
    def setup_model(self, context: RecipeContext, model: Module, newly_initialized: bool) -> Module:
        """LoRA (and QLoRA) on the policy, before fairseq2 wraps it (:mod:`.lora_model`)."""
        config = context.get_config_as(PreferenceFinetuneConfig)
        if config.lora is not None:
            prepare_lora_model(context, config, model)
        return model

    @property
    @override
    def config_kls(self) -> type[object]:
        return PreferenceFinetuneConfig


def validation_dataset(
    context: RecipeContext, config: PreferenceFinetuneConfig, train_dataset: PreferenceDataset
) -> PreferenceDataset | None:
    """``valid_dataset`` if configured, else the training data's ``valid_split`` if present."""
    split = config.dataset.valid_split
    if config.valid_dataset is not None:
        return context.get_dataset_as(PreferenceDataset, "valid_dataset")  # type: ignore[type-abstract]
    if split is not None and train_dataset.has_split(split):
        return train_dataset
    if split is not None:
        log.info(
            "Dataset at {} has no '{}' split and no `valid_dataset` is set; validation is off.",
            train_dataset.location,
            split,
        )
    return None


def read_options(
    config: PreferenceFinetuneConfig,
    budget: int,
    training: bool,
    reference: ReferenceTable | None = None,
) -> ReadOptions:
    """How a split is read; ``reference``: log-probs to attach to each batch."""
    section: PreferenceDatasetSection = config.dataset
    batching = (
        StaticBatching(section.batch_size)
        if section.batch_size is not None
        else LengthBatching(budget)
    )
    return ReadOptions(
        batching=batching,
        example_shuffle_window=section.example_shuffle_window if training else 1,
        batch_shuffle_window=section.batch_shuffle_window if training else 1,
        min_seq_len=section.min_seq_len,
        max_seq_len=section.max_seq_len,
        mask_source_tokens=section.mask_source_tokens,
        packed=section.packed,
        source_encode_mode=section.source_encode_mode,
        target_encode_mode=section.target_encode_mode,
        num_accumulate=config.trainer.grad_accumulation.num_batches if training else 1,
        prefetch=section.prefetch,
        seed=config.common.seed,
        batch_transform=None if reference is None else reference.attach,
        training=training,
    )


def check_vocabulary(context: RecipeContext) -> None:
    """The tokenizer must not produce ids the model has no embedding for.

    Unlike fairseq2's stock check, a pad-index mismatch is allowed: padding is
    masked out by the batch layout, and e.g. Qwen models define no pad index.
    """
    model = context.get_model_as(CausalLM)
    embed = getattr(getattr(model, "decoder_frontend", None), "embed", None)
    if not isinstance(embed, Embedding):
        raise PreferenceConfigError("The model must be a text-only causal language model.")
    vocab_size = context.get_tokenizer().vocab_info.size
    if vocab_size > embed.num_embeddings:
        raise PreferenceConfigError(
            f"The tokenizer has {vocab_size} tokens but the model only {embed.num_embeddings} "
            "embeddings; use the tokenizer the model was trained with."
        )
    if vocab_size < embed.num_embeddings:
        log.warning(
            "The tokenizer has {} tokens and the model {} embeddings; fine if the "
            "embedding table is padded on purpose.",
            vocab_size,
            embed.num_embeddings,
        )


class InstructionFinetuneRecipe(PreferenceFinetuneRecipe):
    """``fairseq2 lm instruction_finetune``: SFT on instruction rows, the usual first stage.

    The same recipe with other defaults: the ``generic_instruction`` data of a
    prepared dataset, the ``sft`` criterion and no reference model.
    """

    @property
    @override
    def config_kls(self) -> type[object]:
        return InstructionFinetuneConfig

"""Typed configuration of the preference finetuning recipe.

The defaults describe a Llama 3.1 8B Instruct DPO run on one 8-GPU node, as the
fairseq2 0.4 preset did: FSDP, bf16 mixed precision, layerwise activation
checkpointing, AdamW at 5.5e-6 with a cosine schedule. Every field can be
changed from YAML (``--config-file``) or the command line (``--config k=v``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fairseq2.data_type import DataType
from fairseq2.recipe.config import (
    ADAMW_OPTIMIZER,
    COSINE_ANNEALING_LR,
    ActivationCheckpointingConfig,
    AdamWConfig,
    CosineAnnealingLRConfig,
    DatasetSection,
    GangSection,
    LRSchedulerSection,
    ModelSection,
    OptimizerSection,
    ReferenceModelSection,
    RegimeSection,
    SupportsStructure,
    TokenizerSection,
    TrainerSection,
)
from fairseq2.runtime.dependency import DependencyResolver
from fairseq2.utils.validation import ValidationResult
from typing_extensions import override

from fairseq2_preference.config.assets import PreferenceCommonSection
from fairseq2_preference.criteria import structure_criterion_config
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.checkpoints import describe_tokenizer_path, follow_policy
from fairseq2_preference.models.lora import LoraConfig

DEFAULT_MODEL = "llama3_1_8b_instruct"


@dataclass(kw_only=True)
class CriterionSection(SupportsStructure):
    """Which loss to train with: ``{name: dpo, config: {beta: 0.1}}``."""

    name: str = "dpo"
    """A registered criterion (see ``fairseq2_preference.criteria.criterion_names()``)."""

    config: object = field(default_factory=dict)
    """The criterion's hyper-parameters; omitted fields take the criterion's defaults."""

    @override
    def structure(self, resolver: DependencyResolver) -> None:
        self.config = structure_criterion_config(self.name, self.config)


@dataclass
class PreferenceReferenceModelSection(ReferenceModelSection):
    """The frozen reference model: by card ``name``, or by ``path`` + ``family``.

    To start from an earlier run (e.g. SFT, then DPO), set
    ``common.assets.prev_checkpoint_dir: <run>/checkpoints`` and name the card
    ``checkpoint_step_<N>`` (or ``last_checkpoint``).
    """

    dtype: DataType | None = None  # type: ignore[assignment]
    """``None``: the training dtype, i.e. ``trainer.mixed_precision.dtype`` when mixed
    precision is on (a bf16 replica, half the memory of a float32 one), else
    ``model.dtype`` (see :func:`resolve_reference_dtype`). Set ``float32`` to keep a
    full-precision reference under autocast."""

    cache: str = "off"
    """Reference log-probs computed once and reused (see ``fairseq2_preference.reference``):
    ``off`` runs the reference model at every step; ``auto`` reads them from the
    cache, filling it first if needed (the reference model is then loaded once);
    ``read`` requires a complete cache entry (``fairseq2 lm preference_reference_logps``)
    and never loads the reference model."""

    cache_dir: str | None = None
    """Where cache entries live; default ``$FAIRSEQ2_CACHE_DIR/preference_reference_logps``
    (else ``~/.cache/fairseq2/preference_reference_logps``). Shared by all ranks."""

    @override
    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.cache not in ("auto", "read", "off"):
            result.add_error(f"`cache` must be 'auto', 'read' or 'off', but is {self.cache!r}.")
        return result


@dataclass(kw_only=True)
class PreferenceDatasetSection(DatasetSection):
    """The data and how it is read. ``name`` is a dataset asset card; or set
    ``name: null``, ``family: generic_preference`` and ``config_overrides.path``."""

    name: str | None = "openassistant2_llama3_preference"

    train_split: str = "train"
    """Split to train on, when the dataset has named splits."""

    valid_split: str | None = "dev"
    """Split to validate on, when the dataset has it (or when ``valid_dataset``
    is set). ``None`` turns validation off."""

    source_encode_mode: str = "prompt"
    """Tokenizer mode for ``src``: ``prompt`` adds BOS."""

    target_encode_mode: str = "prompt_response"
    """Tokenizer mode for responses: ``prompt_response`` adds EOS."""

    mask_source_tokens: bool = True
    """If ``True``, prompt tokens count neither in log-probs nor in the NLL."""

    packed: bool = True
    """Batch the sequences as one stream without padding: every linear layer runs on
    real tokens only and attention stays mask-free (``padding_efficiency`` 1.0).
    ``False``: right-padded ``[2N, W]`` batches (still mask-free causal attention)."""

    min_seq_len: int = 1
    """Examples with a sequence (prompt + response) shorter than this are dropped."""

    max_seq_len: int = 8192
    """Examples with a sequence longer than this are dropped (and counted in the log)."""

    max_num_tokens: int = 8192 * 2
    """Token budget per batch, padding included: 2 × pairs × longest sequence."""

    batch_size: int | None = None
    """If set, batches hold this many pairs and ``max_num_tokens`` is ignored."""

    max_num_valid_tokens: int | None = None
    """Token budget of validation batches (default: ``max_num_tokens``)."""

    example_shuffle_window: int = 10_000
    """Sliding window for shuffling pairs (1: off, 0: whole split in memory)."""

    batch_shuffle_window: int = 1_000
    """Sliding window for shuffling batches (1: off)."""

    prefetch: int = 4
    """Batches prepared ahead in the background."""

    @override
    def validate(self) -> ValidationResult:
        result = super().validate()
        if not 1 <= self.min_seq_len <= self.max_seq_len:
            result.add_error("`min_seq_len` must be >= 1 and <= `max_seq_len`.")
        if self.batch_size is not None and self.batch_size < 1:
            result.add_error("`batch_size` must be >= 1.")
        for name in ("max_num_tokens", "max_num_valid_tokens"):
            budget = getattr(self, name)
            if budget is not None and budget < 2 * self.max_seq_len:
                result.add_error(
                    f"`{name}` ({budget}) must be at least 2 × `max_seq_len` "
                    f"({2 * self.max_seq_len}) so that the longest pair fits in a batch."
                )
        for name in ("example_shuffle_window", "batch_shuffle_window"):
            if getattr(self, name) < 0:
                result.add_error(f"`{name}` must be >= 0.")
        return result


@dataclass(kw_only=True)
class PreferenceFinetuneConfig(SupportsStructure):
    model: ModelSection = field(default_factory=lambda: ModelSection(name=DEFAULT_MODEL))

    reference_model: PreferenceReferenceModelSection | None = field(
        default_factory=lambda: PreferenceReferenceModelSection(name=DEFAULT_MODEL)
    )
    """Ignored (and not loaded) when the criterion needs no reference."""

    dataset: PreferenceDatasetSection = field(
        default_factory=lambda: PreferenceDatasetSection(family=None)
    )

    valid_dataset: DatasetSection | None = None
    """A separate validation dataset (e.g. a ``..._dev`` card); read with the
    options of ``dataset`` and its ``valid_split`` when it has named splits."""

    tokenizer: TokenizerSection = field(
        default_factory=lambda: TokenizerSection(name=DEFAULT_MODEL)
    )

    gang: GangSection = field(default_factory=lambda: GangSection())

    trainer: TrainerSection = field(
        default_factory=lambda: TrainerSection(
            data_parallelism="fsdp",
            activation_checkpointing=ActivationCheckpointingConfig(mode="layerwise"),
            max_grad_norm=1.0,
        )
    )

    criterion: CriterionSection = field(default_factory=lambda: CriterionSection())

    lora: LoraConfig | None = None
    """Train low-rank adapters on a frozen base instead of every weight (e.g.
    ``{rank: 16, alpha: 32, target_modules: all_linear}``); the reference is then
    the base itself, with the adapters off, and no reference weights are loaded."""

    optimizer: OptimizerSection = field(
        default_factory=lambda: OptimizerSection(
            name=ADAMW_OPTIMIZER,
            # fused: one kernel per parameter group step (CPU and CUDA, DDP and FSDP2)
            config=AdamWConfig(lr=5.5e-6, betas=(0.9, 0.95), weight_decay=0.1, impl="fused"),
        )
    )

    lr_scheduler: LRSchedulerSection = field(
        default_factory=lambda: LRSchedulerSection(
            name=COSINE_ANNEALING_LR, config=CosineAnnealingLRConfig(final_lr_scale=0.2)
        )
    )
    """For a constant learning rate: ``{name: passthrough, config: null}``."""

    regime: RegimeSection = field(
        default_factory=lambda: RegimeSection(
            num_steps=5_000,
            validate_every_n_steps=500,
            checkpoint_every_n_steps=1_000,
            keep_last_n_checkpoints=2,
            publish_metrics_every_n_steps=10,
        )
    )

    common: PreferenceCommonSection = field(
        default_factory=lambda: PreferenceCommonSection(no_sweep_dir=True)
    )
    """``no_sweep_dir`` defaults to ``True``: the output directory *is* the run, so
    re-running with a larger ``regime.num_steps`` resumes it (fairseq2's sweep
    sub-directory is named after a hash of the whole config). ``assets.user_paths``
    adds card directories to ``assets.extra_paths`` (see :mod:`.user_assets`)."""

    @override
    def structure(self, resolver: DependencyResolver) -> None:
        describe_tokenizer_path(self.tokenizer)
        follow_policy(self.model, self.reference_model, self.tokenizer, DEFAULT_MODEL)
        resolve_reference_dtype(self)
        if self.lora is not None:
            check_lora_reference(self.model, self.reference_model)


def check_lora_reference(
    model: ModelSection, reference: PreferenceReferenceModelSection | None
) -> None:
    """Under LoRA the reference is the policy's base with its adapters off: a
    ``reference_model`` naming another checkpoint cannot be honoured."""
    if reference is None or (reference.name, reference.path) == (model.name, model.path):
        return
    raise PreferenceConfigError(
        f"With `lora`, the reference model is the policy's base model with its adapters off, "
        f"but `reference_model` names another checkpoint ({reference.name or reference.path}). "
        "Remove `reference_model` from the config (it follows `model`), or set it to the "
        "policy's `model.name` / `model.path`."
    )


def resolve_reference_dtype(config: PreferenceFinetuneConfig) -> None:
    """Give an unset ``reference_model.dtype`` the training dtype.

    The reference only runs forward, in inference mode, and its matmuls run in the
    mixed-precision dtype anyway (autocast, or FSDP's cast of the policy): keeping
    a float32 replica would double its memory (32 GB instead of 16 for an 8B model
    on every rank) for no change in the matmuls. With mixed precision off it is
    ``model.dtype``, like the policy. Under autocast over float32 policy parameters
    the step-1 DPO loss then differs from ln 2 by bf16 rounding of the embeddings
    and norms (about 1e-3); ``reference_model.dtype: float32`` restores exactness.

    Runs when the config is structured, so ``config.yaml`` records the real dtype.
    """
    reference = config.reference_model
    if reference is None or reference.dtype is not None:
        return
    precision = config.trainer.mixed_precision
    reference.dtype = precision.dtype if precision.mode != "off" else config.model.dtype


@dataclass(kw_only=True)
class InstructionFinetuneConfig(PreferenceFinetuneConfig):
    """SFT defaults: Llama 3.1 8B (base) on the instruction rows of OpenAssistant2,
    as the first stage of the SFT → DPO path; the tokenizer is the Instruct one,
    whose EOS is ``<|eot_id|>``, the end of an assistant turn."""

    model: ModelSection = field(default_factory=lambda: ModelSection(name="llama3_1_8b"))

    reference_model: PreferenceReferenceModelSection | None = None

    dataset: PreferenceDatasetSection = field(
        default_factory=lambda: PreferenceDatasetSection(
            name="openassistant2_llama3_instruction", family=None
        )
    )

    criterion: CriterionSection = field(default_factory=lambda: CriterionSection(name="sft"))

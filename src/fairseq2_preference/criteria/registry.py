"""Criteria by name: the registry, the factory and third-party discovery.

Third-party packages make their losses available by name through the entry-point
group ``fairseq2_preference.criteria``; the entry point only has to import the
module that applies :func:`register_criterion`::

    [project.entry-points."fairseq2_preference.criteria"]
    my_loss = "my_package.my_loss:MyLossCriterion"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from fairseq2.logging import log
from fairseq2.utils.structured import StandardValueConverter, StructureError

from fairseq2_preference.criteria.base import CriterionConfig, PreferenceCriterion
from fairseq2_preference.errors import PreferenceConfigError, describe

ENTRY_POINT_GROUP = "fairseq2_preference.criteria"

CriterionT = TypeVar("CriterionT", bound=type[PreferenceCriterion])

_criteria: dict[str, tuple[type[PreferenceCriterion], type[CriterionConfig]]] = {}

_entry_points_loaded = False


def register_criterion(
    name: str, config_kls: type[CriterionConfig]
) -> Callable[[CriterionT], CriterionT]:
    """Class decorator registering a :class:`PreferenceCriterion` under ``name``."""
    if not is_dataclass(config_kls) or not issubclass(config_kls, CriterionConfig):
        raise TypeError(f"`config_kls` of criterion '{name}' must be a CriterionConfig dataclass.")

    def decorate(kls: CriterionT) -> CriterionT:
        if not issubclass(kls, PreferenceCriterion):
            raise TypeError(f"`{kls.__name__}` must subclass PreferenceCriterion.")

        known = _criteria.get(name)
        if known is not None and _qualname(known[0]) != _qualname(kls):
            raise ValueError(
                f"Criterion name '{name}' is already taken by `{_qualname(known[0])}`; "
                "pick another name."
            )

        kls.name = name
        _criteria[name] = (kls, config_kls)
        return kls

    return decorate


def criterion_names() -> list[str]:
    """The names of all available criteria, built-in and installed, sorted."""
    _load_entry_points()
    return sorted(_criteria)


def criterion_kls(name: str) -> type[PreferenceCriterion]:
    return _lookup(name)[0]


def create_criterion(
    name: str, config: CriterionConfig | Mapping[str, Any] | None = None
) -> PreferenceCriterion:
    """Instantiate the criterion ``name``.

    ``config`` is a config instance, a mapping of field overrides applied to the
    defaults, or ``None`` for the defaults.
    """
    kls, config_kls = _lookup(name)
    if config is None or isinstance(config, Mapping):
        config = structure_criterion_config(name, config or {})
    elif not isinstance(config, config_kls):
        raise PreferenceConfigError(
            f"The config of criterion '{name}' must be a `{config_kls.__name__}`, "
            f"not a `{type(config).__name__}`."
        )
    return kls(config)


def structure_criterion_config(name: str, raw: object) -> CriterionConfig:
    """Turn a YAML mapping into the criterion's config, naming any bad field."""
    config_kls = _lookup(name)[1]
    if isinstance(raw, config_kls):
        return raw
    valid = ", ".join(f.name for f in fields(config_kls))
    if not isinstance(raw, Mapping):
        raise PreferenceConfigError(
            f"`criterion.config` for '{name}' must be a mapping of hyper-parameters "
            f"({valid}), not {raw!r}."
        )
    unknown = sorted(set(raw) - {f.name for f in fields(config_kls)})
    if unknown:
        raise PreferenceConfigError(
            f"Criterion '{name}' has no hyper-parameter(s) {', '.join(map(repr, unknown))}. "
            f"Its hyper-parameters are: {valid}."
        )
    try:
        config: CriterionConfig = StandardValueConverter().structure(dict(raw), config_kls)
    except StructureError as ex:
        raise PreferenceConfigError(
            f"`criterion.config` for '{name}' is not valid: {describe(ex.__cause__ or ex)}"
        ) from None
    return config


def _lookup(name: str) -> tuple[type[PreferenceCriterion], type[CriterionConfig]]:
    entry = _criteria.get(name)
    if entry is None:
        _load_entry_points()
        entry = _criteria.get(name)
    if entry is None:
        raise PreferenceConfigError(
            f"'{name}' is not a known criterion. Available criteria: "
            f"{', '.join(sorted(_criteria))}. A criterion from another package must be "
            f"installed and registered under the '{ENTRY_POINT_GROUP}' entry-point group."
        )
    return entry


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as ex:  # a broken plug-in must not break the others
            log.warning("Criterion entry point '{}' ({}) failed to load: {}", ep.name, ep.value, ex)


def _qualname(kls: type) -> str:
    return f"{kls.__module__}.{kls.__qualname__}"

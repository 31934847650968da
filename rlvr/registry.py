"""The environment and verifier registries: rlvr's only module-level state.

Entries are lazy and strict:

* an entry names its target as ``"package.module:Factory"`` (imported on first
  use) or passes the object itself, plus default keyword arguments that
  ``make(id, **overrides)`` / ``make_verifier(name, **overrides)`` override;
* a duplicate id or name is an error, whoever registers it;
* a verifier *function* passed directly has its signature checked at
  registration, a lazy one when it is first loaded.

Environments are also registered with gymnasium, so ``gymnasium.make("rlvr/...")``
returns the same object as :func:`make`.

Third-party plug-ins declare entry points; the entry point's *name* is the env id
or verifier name and its *value* the ``module:attr`` target, so nothing of a
plug-in is imported until it is used::

    [project.entry-points."rlvr.envs"]
    "myorg/Puzzle-v0" = "myorg_rlvr.envs:PuzzleEnv"
    [project.entry-points."rlvr.verifiers"]
    "puzzle" = "myorg_rlvr.verifiers:check_puzzle"

Plug-ins are read on first use of this registry (``make``, lookups, listings) or
by :func:`load_plugins`; call that before ``gymnasium.make`` of a plug-in env.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from rlvr.rewards import Composite, as_verifier, check_signature
from rlvr.types import Verifier

__all__ = [
    "DuplicateRegistrationError",
    "EnvEntry",
    "NotRegisteredError",
    "VerifierEntry",
    "env_entries",
    "load_plugins",
    "make",
    "make_verifier",
    "register_env",
    "register_verifier",
    "unregister_env",
    "unregister_verifier",
    "verifier_entries",
]

ENV_GROUP = "rlvr.envs"
VERIFIER_GROUP = "rlvr.verifiers"


class NotRegisteredError(LookupError):
    """An unknown environment id or verifier name; the message lists close matches."""

    def __str__(self) -> str:  # LookupError would repr() the message
        return str(self.args[0])


class DuplicateRegistrationError(ValueError):
    """An environment id or verifier name that is already registered; the message says by whom."""


@dataclass(frozen=True)
class EnvEntry:
    """A registered environment.

    Attributes:
        id: the environment id (``"namespace/Name-v0"``).
        entry_point: ``"module:Class"`` (imported on first use) or a callable returning the env.
        kwargs: default keyword arguments, which :func:`make` overrides.
        description: one line shown by ``rlvr envs``.
        source: who registered it: ``"rlvr"``, ``"plug-in <distribution>"`` or ``"user"``.
    """

    id: str
    entry_point: str | Callable[..., gym.Env]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "user"


@dataclass(frozen=True)
class VerifierEntry:
    """A registered verifier.

    Attributes:
        name: the verifier name.
        target: ``"module:attr"`` (imported on first use), a verifier class or a function.
        kwargs: default keyword arguments, which :func:`make_verifier` overrides.
        description: one line shown by ``rlvr verifiers``.
        source: who registered it: ``"rlvr"``, ``"plug-in <distribution>"`` or ``"user"``.
    """

    name: str
    target: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = "user"


_ENVS: dict[str, EnvEntry] = {}
_VERIFIERS: dict[str, VerifierEntry] = {}
_plugins_loaded = False


# -- environments ---------------------------------------------------------------------
def register_env(
    id: str,
    entry_point: str | Callable[..., gym.Env],
    *,
    description: str = "",
    source: str = "user",
    **kwargs: Any,
) -> EnvEntry:
    """Register an environment under ``id`` (gymnasium style: ``"namespace/Name-v0"``).

    ``entry_point`` is ``"module:Class"`` (lazy) or a callable returning the env;
    ``kwargs`` are defaults that :func:`make` overrides.
    """
    _load_plugins_once()
    return _register_env(EnvEntry(id, entry_point, dict(kwargs), description, source))


def _register_env(entry: EnvEntry) -> EnvEntry:
    if isinstance(entry.entry_point, str):
        _check_target_string(entry.entry_point, f"environment {entry.id!r}")
    elif not callable(entry.entry_point):
        raise TypeError(f"environment {entry.id!r}: entry_point must be 'module:Class' or a callable")
    if entry.id in _ENVS:
        raise DuplicateRegistrationError(
            f"environment id {entry.id!r} is already registered (by {_ENVS[entry.id].source}); "
            "pick another id or bump its version suffix (-v1)"
        )
    if entry.id in gym.registry:
        raise DuplicateRegistrationError(f"environment id {entry.id!r} is already registered with gymnasium")
    gym.register(id=entry.id, entry_point=entry.entry_point, kwargs=dict(entry.kwargs))
    _ENVS[entry.id] = entry
    return entry


def unregister_env(id: str) -> None:
    """Remove an environment (from gymnasium's registry too); for notebooks and tests."""
    _ENVS.pop(_env_entry(id).id)
    gym.registry.pop(id, None)


def env_entries() -> dict[str, EnvEntry]:
    """All registered environments, built-in, plug-in and user, by id."""
    _load_plugins_once()
    return dict(sorted(_ENVS.items()))


def _env_entry(id: str) -> EnvEntry:
    _load_plugins_once()
    try:
        return _ENVS[id]
    except KeyError:
        raise NotRegisteredError(_unknown("environment", id, _ENVS, "rlvr envs")) from None


def make(id: str, **overrides: Any) -> gym.Env:
    """Build a registered environment: exactly what ``gymnasium.make(id, **overrides)`` returns."""
    entry = _env_entry(id)
    try:
        return gym.make(id, **overrides)
    except TypeError as exc:
        target = _resolve(entry.entry_point) if isinstance(entry.entry_point, str) else entry.entry_point
        raise TypeError(f"environment {id!r}: {exc}; its options are {_options(target)}") from exc


# -- verifiers ------------------------------------------------------------------------
def register_verifier(
    name: str,
    target: str | Callable[..., Any] | None = None,
    *,
    description: str = "",
    source: str = "user",
    **kwargs: Any,
) -> Any:
    """Register a verifier under ``name``; usable as a decorator.

    ``target`` is ``"module:attr"`` (lazy), a verifier class (instantiated with
    ``kwargs``), or a function ``fn(completion, problem, **kwargs) -> float | Verdict``::

        @rlvr.register_verifier("has-answer")
        def has_answer(completion: str, problem: rlvr.Problem) -> float:
            return float(str(problem.reference) in completion)
    """
    if target is None:

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            register_verifier(name, fn, description=description, source=source, **kwargs)
            return fn

        return decorator
    _load_plugins_once()
    entry = VerifierEntry(name, target, dict(kwargs), description or _first_doc_line(target), source)
    return _register_verifier(entry)


def _register_verifier(entry: VerifierEntry) -> VerifierEntry:
    if not isinstance(entry.name, str) or not entry.name:
        raise ValueError(f"a verifier name must be a non-empty string, got {entry.name!r}")
    if entry.name in _VERIFIERS:
        raise DuplicateRegistrationError(
            f"verifier name {entry.name!r} is already registered (by {_VERIFIERS[entry.name].source}); pick another name"
        )
    if isinstance(entry.target, str):
        _check_target_string(entry.target, f"verifier {entry.name!r}")
    else:
        _check_verifier_target(entry.target, entry.name, entry.kwargs)
    _VERIFIERS[entry.name] = entry
    return entry


def _check_verifier_target(target: Any, name: str, kwargs: dict[str, Any]) -> None:
    if isinstance(target, type):
        if issubclass(target, Composite):
            return
        call = next((vars(c)["__call__"] for c in target.__mro__ if "__call__" in vars(c)), None)
        if call is None:
            raise TypeError(f"verifier {name!r}: class {target.__name__} has no __call__(self, completion, problem)")
        try:
            inspect.signature(call).bind(None, "completion", "problem")
        except TypeError:
            raise TypeError(
                f"verifier {name!r}: {target.__name__}.__call__ must take (self, completion, problem)"
            ) from None
    elif callable(target):
        check_signature(target if inspect.isfunction(target) else target.__call__, name, kwargs)
    else:
        raise TypeError(f"verifier {name!r}: target must be 'module:attr', a class or a function, got {target!r}")


def unregister_verifier(name: str) -> None:
    """Remove a registered verifier; for notebooks and tests.

    Raises:
        NotRegisteredError: no verifier is registered as ``name``.
    """
    _VERIFIERS.pop(_verifier_entry(name).name)


def verifier_entries() -> dict[str, VerifierEntry]:
    """All registered verifiers, built-in, plug-in and user, by name."""
    _load_plugins_once()
    return dict(sorted(_VERIFIERS.items()))


def _verifier_entry(name: str) -> VerifierEntry:
    _load_plugins_once()
    try:
        return _VERIFIERS[name]
    except KeyError:
        raise NotRegisteredError(_unknown("verifier", name, _VERIFIERS, "rlvr verifiers")) from None


def make_verifier(name: str, **overrides: Any) -> Verifier:
    """Build the verifier registered as ``name`` with its defaults updated by ``overrides``."""
    entry = _verifier_entry(name)
    target = _resolve(entry.target) if isinstance(entry.target, str) else entry.target
    kwargs = {**entry.kwargs, **overrides}
    if isinstance(target, type) and issubclass(target, Composite):
        return target(**kwargs)
    try:
        verifier = as_verifier(target, name, **kwargs)
    except TypeError as exc:
        if not isinstance(target, type):
            raise
        raise TypeError(f"verifier {name!r}: {exc}; its options are {_options(target)}") from exc
    if not getattr(verifier, "name", None):
        try:
            verifier.name = name
        except AttributeError:
            pass
    return verifier


# -- plug-ins -------------------------------------------------------------------------
def load_plugins() -> None:
    """Register every plug-in environment and verifier declared by installed packages."""
    global _plugins_loaded
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENV_GROUP):
        _register_env(EnvEntry(ep.name, ep.value, {}, "", _plugin_source(ep)))
    for ep in importlib.metadata.entry_points(group=VERIFIER_GROUP):
        _register_verifier(VerifierEntry(ep.name, ep.value, {}, "", _plugin_source(ep)))


def _load_plugins_once() -> None:
    if not _plugins_loaded:
        load_plugins()


def _plugin_source(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"plug-in {dist.name if dist else ep.module}"


# -- built-ins ------------------------------------------------------------------------
def register_builtins(kind: str, table: dict[str, tuple[str, str]], package: str) -> Callable[[str], Any]:
    """Register rlvr's own ``{name: ("module:Class", description)}`` entries.

    Args:
        kind: ``"env"`` for environments; anything else registers verifiers.
        table: the entries, by name.
        package: the package whose ``__getattr__`` is returned (named in its errors).

    Returns:
        A module ``__getattr__`` that loads each class on first access.
    """
    for name, (target, description) in table.items():
        if kind == "env":
            _register_env(EnvEntry(name, target, {}, description, "rlvr"))
        else:
            _register_verifier(VerifierEntry(name, target, {}, description, "rlvr"))
    classes = {target.rpartition(":")[2]: target for target, _ in table.values()}

    def __getattr__(attr: str) -> Any:
        if attr in classes:
            return _resolve(classes[attr])
        raise AttributeError(f"module {package!r} has no attribute {attr!r}")

    return __getattr__


# -- helpers --------------------------------------------------------------------------
def _check_target_string(target: str, what: str) -> None:
    module, sep, attr = target.partition(":")
    if not (sep and module and attr):
        raise ValueError(f"{what}: target {target!r} must look like 'package.module:Name'")


def _resolve(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_name!r} for {target!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r} (target {target!r})") from None
    return obj


def _unknown(kind: str, name: str, known: dict[str, Any], command: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (`{command}` lists them all)"


def _options(target: Any) -> str:
    """The keyword options of a factory, following ``**kwargs`` up a class's MRO."""
    callables = [c.__init__ for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]
    shown: dict[str, str] = {}
    for fn in callables:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                shown.setdefault(p.name, str(p))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return f"({', '.join(shown.values())})" if shown else "(none)"


def _first_doc_line(obj: Any) -> str:
    if isinstance(obj, str):
        return ""
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""

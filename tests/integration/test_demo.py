"""`make demo`'s configuration: a CPU profile that fits 15 minutes, a larger one picked on a CUDA device."""

from __future__ import annotations

import pytest

from examples.demo import PROFILES, _parser, resolve_profile


def test_cpu_profile_is_picked_without_cuda_and_flags_override_it() -> None:
    args = resolve_profile(_parser().parse_args(["--train-steps", "3"]), cuda=False)
    assert args.profile == "cpu" and args.train_steps == 3
    assert (args.episodes, args.batch_size, args.eval_episodes, args.threads, args.train_top_layers) == (16, 4, 4, 1, 10)
    # The floor: at least 4 held-out episodes of at least 10 agent turns per model.
    assert args.eval_episodes >= 4 and args.eval_max_turns >= 10


def test_cuda_profile_is_larger_and_cpu_flag_forces_the_small_one() -> None:
    gpu = resolve_profile(_parser().parse_args([]), cuda=True)
    assert gpu.profile == "cuda"
    assert all(getattr(gpu, name) == pair[1] for name, pair in PROFILES.items())
    assert gpu.episodes > PROFILES["episodes"][0] and gpu.train_steps > PROFILES["train_steps"][0]
    forced = resolve_profile(_parser().parse_args(["--cpu", "--episodes", "5"]), cuda=True)
    assert forced.profile == "cpu" and forced.episodes == 5 and forced.train_steps == PROFILES["train_steps"][0]


torch = pytest.importorskip("torch")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_player_generates_a_batch_on_the_gpu(tiny_model_dir) -> None:
    from examples.crafter import SYSTEM_PROMPT, CrafterGame, ModelPolicy, render_observation

    state = CrafterGame(1).reset()
    conversation = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": render_observation(state, turn=0, max_turns=3)}]
    policy = ModelPolicy(tiny_model_dir, max_new_tokens=4, batch_size=2)
    replies = policy.generate_batch([conversation, conversation])
    assert policy._lm.device.type == "cuda" and policy._lm.dtype in (torch.bfloat16, torch.float16)
    assert len(replies) == 2 and replies[0] == replies[1]

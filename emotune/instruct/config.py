"""The recipe of `emotune instruct`: which samples (data:), which cached clues (features:), and how the
instruction data is written and by which OpenAI-compatible endpoint (instruct:).

The endpoint's key is never part of a recipe: it is read from the environment variable named by
`instruct.llm.api_key_env` (EMOTUNE_LLM_API_KEY by default), so recipes can be shared and committed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Literal, Optional

from emotune.errors import ConfigError
from emotune.recipe import load_recipe
from emotune.data.config import DataConfig
from emotune.features.config import FeaturesConfig

KINDS = ("categorical", "reasoning", "conversation")


@dataclasses.dataclass
class LLMConfig:
    base_url: Optional[str] = None  # e.g. http://127.0.0.1:8000/v1; default $EMOTUNE_LLM_BASE_URL
    model: Optional[str] = None  # default $EMOTUNE_LLM_MODEL, else the first model the server lists
    api_key_env: str = "EMOTUNE_LLM_API_KEY"  # the environment variable that holds the key (may be unset)
    concurrency: int = 4  # requests in flight at once
    timeout_s: float = 60.0  # per request
    retries: int = 3  # per request, on timeouts, dropped connections, 429/5xx and unreadable responses
    backoff_s: float = 1.0  # first retry delay; doubles each retry (with jitter), capped by max_backoff_s
    max_backoff_s: float = 30.0
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 160

    def resolved_base_url(self) -> str:
        url = self.base_url or os.environ.get("EMOTUNE_LLM_BASE_URL")
        if not url:
            raise ConfigError("no LLM endpoint: set instruct.llm.base_url or EMOTUNE_LLM_BASE_URL "
                              "(e.g. http://127.0.0.1:8000/v1 for `emotune serve`)")
        return url.rstrip("/")

    def resolved_model(self) -> Optional[str]:
        return self.model or os.environ.get("EMOTUNE_LLM_MODEL") or None

    def api_key(self) -> Optional[str]:
        return os.environ.get(self.api_key_env) or None


@dataclasses.dataclass
class InstructConfig:
    output: str = "runs/instruct/${dataset}.jsonl"  # instruction JSONL (appended; resumable)
    kinds: list[Literal["categorical", "reasoning", "conversation"]] = dataclasses.field(default_factory=lambda: list(KINDS))
    # Cached features turned into words: egemaps (prosody), fer (facial expression), asr (Whisper transcript
    # for samples without one).
    clues: list[Literal["egemaps", "fer", "asr"]] = dataclasses.field(default_factory=lambda: ["egemaps"])
    prompts_dir: Optional[str] = None  # a folder whose YAML files replace the built-in ones of the same name
    # Which samples: all labelled ones, or only these groups / ids, at most `limit` (0 = no limit).
    groups: list[str] = dataclasses.field(default_factory=list)
    ids: list[str] = dataclasses.field(default_factory=list)
    limit: int = 0
    # Prosody is described relative to a baseline: the speaker's own recordings (group), else the dataset.
    baseline: Literal["group", "dataset"] = "group"
    min_baseline: int = 8  # fewer recordings of a speaker than this: fall back to the dataset baseline
    reveal_label: bool = True  # tell the LLM the gold label (EmoVIT does); it still must not contradict it
    label_check: Literal["contradiction", "match", "off"] = "contradiction"  # drop replies implying another label / not implying gold
    # Drop replies whose claims contradict the measured clues (louder for a clip measured quieter, a face cue
    # with no face clue, a quote not in the transcript), that echo the label hint, or that loop (grounding.py).
    grounding: bool = True
    parse_retries: int = 2  # unusable replies (empty, unreadable, degenerate) are asked again this many times
    retry_rejected: bool = False  # rerun records rejected for their content (label check) instead of skipping them
    include_transcript: bool = True  # put the transcript in the human turn (the model reads it too)
    simple_questions: int = 2  # a conversation: this many simple questions, then the complex ones
    complex_questions: int = 1
    llm: LLMConfig = dataclasses.field(default_factory=LLMConfig)

    def output_path(self, dataset: str) -> Path:
        return Path(self.output.replace("${dataset}", dataset))


@dataclasses.dataclass
class InstructRecipe:
    name: str = "instruct"
    seed: int = 0  # template choices are a function of (seed, record id), so reruns pick the same ones
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeaturesConfig = dataclasses.field(default_factory=FeaturesConfig)
    instruct: InstructConfig = dataclasses.field(default_factory=InstructConfig)


def load_instruct_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> InstructRecipe:
    """Read an instruct recipe and apply `key=value` overrides; unknown keys and bad types are one-line errors."""
    cfg = load_recipe(InstructRecipe, path, overrides)
    ins = cfg.instruct
    if not ins.kinds:
        raise ConfigError(f"instruct.kinds: name at least one of {', '.join(KINDS)} ({path})")
    for key in ("limit", "parse_retries", "simple_questions", "complex_questions", "min_baseline"):
        if getattr(ins, key) < 0:
            raise ConfigError(f"instruct.{key}: must be >= 0 ({path})")
    if "conversation" in ins.kinds and ins.simple_questions + ins.complex_questions == 0:
        raise ConfigError(f"instruct: a conversation needs at least one question ({path})")
    llm = ins.llm
    if llm.concurrency < 1 or llm.timeout_s <= 0 or llm.retries < 0 or llm.max_tokens < 1:
        raise ConfigError(f"instruct.llm: concurrency and max_tokens must be >= 1, timeout_s > 0, retries >= 0 ({path})")
    return cfg

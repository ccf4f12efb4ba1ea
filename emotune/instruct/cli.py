"""The `emotune instruct` verb: instruction data (categorical, reasoning, conversation) from clues and an LLM."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser(
        "instruct", help="write instruction data (LLaVA layout) from cached clues through an OpenAI-compatible LLM",
        description="Turn each sample's cached clues (prosody against the speaker's baseline, facial expression, "
                    "transcript, image attributes) into a caption, and write categorical, reasoning and conversation "
                    "instructions as JSONL. The LLM endpoint comes from instruct.llm.base_url or EMOTUNE_LLM_BASE_URL, "
                    "its key from EMOTUNE_LLM_API_KEY; it is checked before anything is written. Resumable: ids "
                    "already written are skipped, and <output>.stats.json keeps each run's counts and their totals.")
    p.add_argument("config", help="instruct recipe (configs/instruct_*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="recipe overrides, before or after the flags, e.g. instruct.limit=6 instruct.llm.concurrency=8")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_instruct)


def cmd_instruct(args: argparse.Namespace) -> int:
    from emotune.instruct.config import load_instruct_config
    from emotune.instruct.generate import run_instruct

    cfg = load_instruct_config(args.config, args.overrides)
    stats = run_instruct(cfg, progress=not args.no_progress)
    keys = ("written", "filtered", "skipped", "already_written", "already_rejected", "in_file")
    tokens = ("prompt_tokens", "completion_tokens")
    # This run's counts; `tokens_all_runs` adds the runs before it on the same output (see the stats file).
    print(json.dumps({k: stats[k] for k in keys} | {"tokens": {k: stats["llm"].get(k, 0) for k in tokens},
                                                    "tokens_all_runs": {k: stats["totals"].get("llm", {}).get(k, 0)
                                                                        for k in tokens}}))
    return 0

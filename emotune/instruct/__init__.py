"""Instruction data from clues (EmoVIT / MERR style): captions from cached features, then an LLM."""

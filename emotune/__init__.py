"""emotune: multimodal emotion recognition and reasoning with instruction-tuned language models."""

__version__ = "0.1.0"

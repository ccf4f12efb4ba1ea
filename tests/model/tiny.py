"""A tiny randomly initialised causal LM + tokenizer saved to a folder: the "any Hugging Face model"
code path without the hub, and fast enough for unit tests."""

from __future__ import annotations

from pathlib import Path

from emotune.data.labels import load_label_set

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_lm(path: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    corpus = [" ".join(load_label_set(n).full) for n in ("ravdess", "meld", "goemotions")]
    corpus += ["The person says: what emotion is expressed? Answer with one of the labels. audio features",
               "Which emotion does the speaker feel? Think step by step, then answer. Emotion: user assistant"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus * 5, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path


def random_examples(n: int, label_names: list[str], shapes: dict[str, tuple], seed: int = 0, missing: float = 0.0,
                    texts: bool = True, signal: bool = True):
    """Random Examples with real label names. With `signal`, each class shifts its features so a model
    can learn something in a few steps; `missing` makes a fraction of each feature None."""
    import numpy as np

    from emotune.data.examples import Examples

    rng = np.random.default_rng(seed)
    C = len(label_names)
    y = np.arange(n) % C
    rng.shuffle(y)
    feats = {}
    for name, shape in shapes.items():
        col = []
        for i in range(n):
            if rng.random() < missing:
                col.append(None)
                continue
            x = rng.normal(size=shape).astype(np.float32)
            if signal:
                x[..., y[i] % shape[-1]] += 3.0
            col.append(x)
        feats[name] = col
    words = ["well", "okay", "really", "now", "fine", "so", "what"]
    texts_ = [" ".join(rng.choice(words, 3)) if texts else "" for _ in range(n)]
    y_multi = np.zeros((n, C), np.float32)
    y_multi[np.arange(n), y] = 1
    y_multi[np.arange(n), (y + 1) % C] = rng.random(n) < 0.3
    y_soft = 0.7 * np.eye(C, dtype=np.float32)[y] + 0.3 / C
    return Examples(ids=[f"s{i}" for i in range(n)], label_names=list(label_names), features=feats, texts=texts_,
                    context=[[] for _ in range(n)], y=y.astype(np.int64), y_multi=y_multi, y_soft=y_soft,
                    groups=[None] * n)

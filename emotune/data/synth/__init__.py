"""The built-in synthetic corpus behind `emotune quickstart`: emotional speech made with espeak-ng.

Honest note: every clip is synthetic. espeak-ng speaks sentences written for emotune, and the emotion is
set by prosody rules, not acted by a person. The corpus exists so the whole pipeline (prepare, features,
training, speaker-independent cross-validation, report, demo) runs on a fresh machine with no download;
a score on it says the pipeline works, not how well emotions are recognised in real speech.

Design:
- Speakers: 6 espeak-ng voices (3 male, 3 female variants; US and British English), each with its own
  baseline pitch, speed and loudness, so speaker-independent folds (leave speakers out) mean something.
- Emotions: neutral, happy, sad, angry, fearful. Each is a prosody rule relative to the speaker
  (`voices.yaml`): happy = higher, wider pitch, a bit faster and louder, the key word stressed; sad =
  lower, flat, slow, soft; angry = slightly higher, wide range, fast, loudest, the key word stressed
  hard; fearful = highest, narrow range, fastest, softer, with hesitation pauses; neutral = the
  speaker's baseline. Every clip draws deterministic offsets (jitter) so emotions overlap somewhat.
- Text vs audio: 9 sentences per emotion carry the emotion in their wording (the text alone is
  informative), and 4 shared sentences with neutral or ambiguous wording are spoken in EVERY emotion,
  so for those only the voice tells the emotion. Every speaker says every sentence (as in RAVDESS), so
  a text model has seen a held-out speaker's sentences: text alone tops out near 9/13 + 4/13 x 1/5 =
  0.75 accuracy, and only audio can lift the ambiguous quarter above chance.
- Counts: 6 speakers × 5 emotions × 13 sentences = 390 clips of 1.6-4.3 s (17 minutes), 16 kHz mono,
  about 33 MB; generation takes about 5 s on 2 idle cores.
- Deterministic and cached: the same settings give the same bytes; `build_corpus` reuses a corpus whose
  settings hash and files match, and publishes a new one atomically (temp folder + rename).

`emotune.data.sources.synthetic` reads the layout `build_corpus` writes.
"""

from emotune.data.synth.build import BuildResult, build_corpus, default_corpus_dir, plan

__all__ = ["BuildResult", "build_corpus", "default_corpus_dir", "plan"]

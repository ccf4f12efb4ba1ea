# The `fer` CNN's own answer (argmax of its 7 probabilities) on FER2013 dev / test, from the cached
# fer_image features (run `emotune features configs/fer2013.yaml` first). Prints WA, UA and macro-F1.
import numpy as np
from emotune.data.sample import read_manifest
from emotune.features.store import load_features
from emotune.features.face import FER_LABELS
from emotune.evaluate.metrics import classification_metrics
m = read_manifest("runs/manifests/fer2013.jsonl")
f = load_features(m, ["fer_image"])["fer_image"]
names = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
for split in ("dev", "test"):
    ss = [s for s in m.samples if s.split == split]
    pred = [names.index(FER_LABELS[int(np.argmax(f[s.id][:7]))]) for s in ss]
    gold = [names.index(s.label) for s in ss]
    r = classification_metrics(np.array(gold), np.array(pred), names)
    print(split, {k: round(r[k], 4) for k in ("wa", "ua", "macro_f1")})

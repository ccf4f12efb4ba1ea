# The manifest of just the images the FER2013 LM recipe's subset uses (its seeded, label-stratified 2,000
# Training images, 700 PublicTest images, and all 3,589 PrivateTest images), drawn by the same code and
# seed as `emotune train configs/fer2013_lm.yaml`. A costly extractor (MobileNetV2) then runs on 6,288
# images instead of 35,887, and a run given this manifest trains, selects and tests on the same images:
#   python results/fer2013/subset_manifest.py runs/manifests/fer2013_sub2000.jsonl
#   emotune features --manifest runs/manifests/fer2013_sub2000.jsonl --extractors "mobilenet_v2(grid=3)"
#   emotune train configs/fer2013_lm.yaml data.manifest=runs/manifests/fer2013_sub2000.jsonl ...
import json
import sys

from emotune.config import load_config
from emotune.experiments.run import ensure_manifest, folds_for, keep_labelled, label_set_for, split_seed, subsample

cfg = load_config("configs/fer2013_lm.yaml", sys.argv[2:])
man = ensure_manifest(cfg)
fold = folds_for(cfg, man)[0]
samples, _ = keep_labelled(cfg, man, label_set_for(cfg, man))
label_of = {s.id: s.label for s in samples}
train = subsample(list(fold.train), cfg.data.max_train, label_of, split_seed(cfg))
val = subsample(list(fold.val), cfg.data.max_val, label_of, split_seed(cfg))
keep = set(train) | set(val) | set(fold.test)
with open(cfg.data.manifest_path()) as f, open(sys.argv[1], "w") as out:
    for line in f:
        rec = json.loads(line)
        if "id" not in rec or rec["id"] in keep:  # the header line, then the kept samples
            out.write(line)
print(f"{sys.argv[1]}: train {len(train)}, val {len(val)}, test {len(fold.test)}")

# The manifest of just the images the FER2013 LM recipe's subset uses (its seeded, label-stratified 2,000
# Training images, 700 PublicTest images, and all 3,589 PrivateTest images), cut by the training code itself
# (`fold_manifest`). The grid row's runs in RESULTS.md were given this manifest; since then a subsampled
# `emotune train` extracts only its drawn samples on its own, so the script is needed only to redo them as run:
#   python results/fer2013/subset_manifest.py runs/manifests/fer2013_sub2000.jsonl
#   emotune train configs/fer2013_lm.yaml data.manifest=runs/manifests/fer2013_sub2000.jsonl ...
import json
import sys

from emotune.config import load_config
from emotune.experiments.run import ensure_manifest, fold_manifest, folds_for

cfg = load_config("configs/fer2013_lm.yaml", sys.argv[2:])
man = ensure_manifest(cfg)
keep = {s.id for s in fold_manifest(cfg, man, folds_for(cfg, man)[0]).samples}
with open(cfg.data.manifest_path()) as f, open(sys.argv[1], "w") as out:
    for line in f:
        rec = json.loads(line)
        if "id" not in rec or rec["id"] in keep:  # the header line (kept as written), then the kept samples
            out.write(line)
print(f"{sys.argv[1]}: {len(keep)} samples")

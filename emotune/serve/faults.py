"""A fault switch for testing clients against a real server: some chat replies fail on purpose.

Off unless `--faults SPEC` (or EMOTUNE_SERVE_FAULTS) is given. SPEC is either fractions drawn at random
from a seeded generator, or a fixed cycle applied to successive requests:

    error=0.1,empty=0.1,malformed=0.05,slow=0.05   each request: 10% HTTP 500, 10% empty content, ...
    error,ok,empty,ok,malformed,ok,slow,ok         request 1 gets a 500, request 2 is served, ...

Kinds: `error` (HTTP 500), `empty` (a well-formed reply whose content is ""), `malformed` (HTTP 200 with
a body that is not valid JSON), `slow` (the reply waits `slow_s` seconds first: clients time out).
"""

from __future__ import annotations

import random
import threading
from typing import Optional

from emotune.errors import EmotuneError

KINDS = ("error", "empty", "malformed", "slow")


class FaultPlan:
    def __init__(self, spec: str = "", seed: int = 0, slow_s: float = 30.0):
        self.spec = spec.strip()
        self.slow_s = slow_s
        self.fractions: dict[str, float] = {}
        self.cycle: list[Optional[str]] = []
        self.counts = {k: 0 for k in KINDS}
        self._n = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        if not self.spec:
            return
        items = [i.strip() for i in self.spec.split(",") if i.strip()]
        with_eq = [i for i in items if "=" in i]
        if with_eq and len(with_eq) != len(items):
            raise EmotuneError(f"faults '{spec}': use either kind=fraction items or a plain cycle of kinds, not both")
        for item in items:
            kind, _, frac = item.partition("=")
            kind = kind.strip()
            if kind not in KINDS and not (kind == "ok" and not with_eq):
                raise EmotuneError(f"faults '{spec}': unknown kind '{kind}' (known: {', '.join(KINDS)}, and ok in a cycle)")
            if with_eq:
                try:
                    p = float(frac)
                except ValueError:
                    raise EmotuneError(f"faults '{spec}': '{item}' needs a number after '='") from None
                if not 0 <= p <= 1:
                    raise EmotuneError(f"faults '{spec}': fraction for '{kind}' must be within 0..1")
                self.fractions[kind] = p
            else:
                self.cycle.append(None if kind == "ok" else kind)
        if sum(self.fractions.values()) > 1 + 1e-9:
            raise EmotuneError(f"faults '{spec}': fractions add up to more than 1")

    @property
    def active(self) -> bool:
        return bool(self.fractions or any(self.cycle))

    def draw(self) -> Optional[str]:
        """The fault for the next request, or None to serve it normally."""
        if not self.active:
            return None
        with self._lock:
            if self.cycle:
                kind = self.cycle[self._n % len(self.cycle)]
            else:
                u, kind, acc = self._rng.random(), None, 0.0
                for k, p in self.fractions.items():
                    acc += p
                    if u < acc:
                        kind = k
                        break
            self._n += 1
            if kind:
                self.counts[kind] += 1
            return kind

"""A trial's training key: one hash for everything that decides its training run, so that studies
holding the very same run (a baseline in several studies) train it once (workers.reuse). A trial
holds it in its user attr storage.contract.outcome.RUN_KEY."""

from __future__ import annotations

import hashlib
import json

from storage.contract.params import resolve
from storage.contract.spec import DRAWS

LENGTH = 32  # hex characters of the sha256 kept


def key(spec, params: dict, seed: int) -> str:
    """The training key of a trial of `spec` with the training parameters `params` (the spec's fixed
    ones and the trial's searched ones, the seed taken out) and training seed `seed`.

    Made of the model, the data set, the resolved configuration (defaults filled in, so that writing a
    default or leaving it out is one run), the length, the seed and what it draws; `[study] seed` too
    when the seed does not draw every part (the rest comes from it). Nothing else of the spec (name,
    words, claims, other points, search) changes it. BadInput for parameters that resolve refuses.
    """
    draws = [part for part in DRAWS if part in spec.seed_draws]
    run = dict(model=spec.model, dataset=spec.dataset, config=resolve(spec.model, params), epochs=spec.epochs,
               steps=spec.steps, seed=int(seed), draws=draws,
               fixed_seed=spec.seed if len(draws) < len(DRAWS) else None)
    text = json.dumps(run, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:LENGTH]

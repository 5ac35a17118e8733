"""Seeds by power: how many seeds a study needs for the effects its post claims to be detectable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from storage.contract.spec import SEED

DEFAULT_CAP = 6  # seeds per configuration `sweeper reproduce --repeats auto` goes up to unless told
ATTR = "sweeper_seeds"  # a study's user attr: the Choice made for it (Choice.to_attr)


@dataclass(frozen=True)
class Choice:
    """The seeds chosen for a study from its pilot: `seeds` (between `pilot` and `cap`), and per claim of
    the post (numbered from 1) the seeds it needs (None: more than `cap`). `matched`: the seeds of the
    study it is set beside (a tuned study's at the post's settings), which `seeds` is raised to."""

    pilot: int
    cap: int
    seeds: int
    needs: dict = field(default_factory=dict)
    matched: int = 0

    def to_attr(self) -> dict:
        """A JSON-ready dict (claim numbers as strings, as JSON keys are)."""
        return {"pilot": self.pilot, "cap": self.cap, "seeds": self.seeds,
                "needs": {str(k): v for k, v in self.needs.items()}, "matched": self.matched}

    @classmethod
    def from_attr(cls, attr) -> "Choice | None":
        """The inverse of `to_attr`; None for anything else."""
        if not isinstance(attr, dict):
            return None
        return cls(attr["pilot"], attr["cap"], attr["seeds"], {int(k): v for k, v in attr.get("needs", {}).items()},
                   attr.get("matched", 0))

    def words(self) -> str:
        """One line for the report: what was chosen and why."""
        short = [f"{k}" for k, n in self.needs.items() if n is None]
        why = (f"; claims {', '.join(short)} would need more than {self.cap}" if short else "")
        own = max([self.cap if n is None else n for n in self.needs.values()], default=self.pilot)
        raised = (f"; raised from {max(own, self.pilot)} to {self.seeds}, the seeds of the study at the post's "
                  "settings it is set beside" if self.matched > max(own, self.pilot) else "")
        return (f"{self.seeds} seeds (pilot {self.pilot}, cap {self.cap}): the fewest that make every claimed "
                f"effect detectable at 80 % power{why}{raised}" if self.needs else
                f"{self.seeds} seeds (pilot {self.pilot}): no claim of the post states an effect size{raised}")


def seeds_for(spread: float, levels: int, claimed: float, pilot: int, cap: int) -> int | None:
    """The fewest seeds n in [pilot, cap] at which a claim with per-seed standard deviation `spread` finds an
    effect of `claimed` at 80 % power (stats.detectable on (levels - 1) x (n - 1) degrees of freedom for a
    paired claim pooled over `levels` configurations, n - 1 for a claim on one); None past `cap`."""
    from sweeper import stats  # scipy: not for the CLI's start

    if not (math.isfinite(spread) and spread > 0 and math.isfinite(claimed) and claimed > 0):
        return pilot
    for n in range(max(pilot, 2), cap + 1):
        df = (levels - 1) * (n - 1) if levels > 1 else n - 1
        if stats.detectable(spread, n, df) <= claimed:
            return n
    return None


def choose(frame, pilot: int, cap: int) -> Choice:
    """The Choice for a study whose pilot's claims frame (sweeper.claims.claims on the pilot's seeds) is
    `frame`: the post's own claims that state a size (the post's difference, or a margin) decide."""
    needs = {}
    for number, row in frame.iterrows():
        if row["origin"] != "post" or not math.isfinite(row["claimed"]) or row["verdict"] == "untestable":
            continue
        needs[number + 1] = seeds_for(row["spread"], int(row["levels"]), row["claimed"], pilot, cap)
    seeds = max([cap if n is None else n for n in needs.values()], default=pilot)
    return Choice(pilot, cap, max(seeds, pilot), needs)


def pilot_choice(handle, pilot: int, cap: int, matched: int = 0) -> Choice:
    """`choose` on the study's first `pilot` seeds (so that the choice stays the same however many have run),
    raised to `matched` seeds (those of the study it is set beside), within `cap`."""
    from sweeper import analysis, claims
    from sweeper.measures import measures

    trials, epochs = analysis.trials(handle), analysis.epochs(handle)
    trials = trials[trials[SEED] < handle.spec.seed + pilot]
    epochs = epochs[epochs["trial"].isin(trials["trial"])]
    choice = choose(claims.claims(handle, trials, epochs, measures(handle, trials, epochs)), pilot, cap)
    return replace(choice, seeds=max(choice.seeds, min(matched, cap)), matched=matched)

"""The Markdown report of studies (`report.md` with its PNGs beside it): per study its setup, our figures
beside the posts', the claims with their verdicts, the plots and how long it took."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from storage.contract.errors import BadInput
from storage.contract.outcome import SHARED_FROM
from storage.contract.spec import SEED, short
from sweeper import claims as verdicts
from sweeper import plots
from sweeper.evidence import at_end, digest
from sweeper.measures import config_stats, measures

VERDICTS = (verdicts.SUPPORTED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE)
MODELS = {"mlp": "MLP", "lenet": "LeNet-5"}


@dataclass
class Part:
    """A heading of the report and the studies under it (a section of `sweeper reproduce`)."""

    title: str
    intro: str = ""
    handles: list = field(default_factory=list)


def check_out(out: str | Path) -> Path:
    """The report's folder; BadInput when it cannot be written, found by writing a probe file into it
    (or into its parent when it is still to be made), so that a long run is refused before it starts."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file, not a folder: name a folder for report.md and its plots")
    where = out if out.is_dir() else out.parent
    if not where.is_dir():
        raise BadInput(f"--out {out}: no folder {where.resolve()}: create it or write elsewhere")
    try:
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise BadInput(f"--out {out}: folder {where.resolve()} is not writable ({exc.strerror or exc}): "
                       "write elsewhere") from None
    return out


def write(parts: list[Part], out: str | Path, *, title: str, intro: str = "") -> Path:
    """Write report.md and its PNGs into folder `out`; its path.

    A part with a title is a `##` section; its studies are `###` headings under it, except a part of
    one study, whose section heading stands for the study."""
    with _staged(out) as tmp:
        studies = _adjusted([(part, handle, _measure(handle)) for part in parts for handle in part.handles])
        anchors = _Anchors(["Overview"] if len(studies) > 1 else [])
        heads = {}  # id(handle) -> the heading that stands for the study, or None
        for part in parts:
            if part.title:
                anchors.add(part.title)
            for handle in part.handles:
                own = not part.title or len(part.handles) > 1
                heads[id(handle)] = (handle.spec.heading if own else None,
                                     anchors.add(handle.spec.heading) if own else anchors.last)
        lines = [f"# {title}", ""] + ([intro, ""] if intro else []) + _caveats(studies)
        lines += _overview(studies, heads)
        known = {handle.spec.name: data for _, handle, data in studies}  # as judged here (Holm-adjusted)
        for part in parts:
            level = "###" if part.title else "##"
            if part.title:
                lines += [f"## {part.title}", ""] + ([part.intro, ""] if part.intro else [])
            for owner, handle, data in studies:
                if owner is part:
                    heading = heads[id(handle)][0]
                    lines += ([f"{level} {heading}", ""] if heading else []) + \
                        _study(handle, data, tmp, level if heading else level[:-1], titled=bool(heading),
                               known=known)
        lines += _superseded(studies, heads)
        (tmp / "report.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        stale = _listed(Path(out)) - {p.name for p in tmp.iterdir()}
        (tmp / MANIFEST).write_text("".join(f"{p.name}\n" for p in sorted(tmp.glob("*.png"))), encoding="utf-8")
    for name in stale:  # the PNGs of an earlier report into this folder that this one does not show
        (Path(out) / name).unlink(missing_ok=True)
    return Path(out) / "report.md"


MANIFEST = ".sweeper-files"  # the PNGs the last report wrote into its folder (the next removes stale ones)


def _listed(out: Path) -> set[str]:
    """The PNG names the manifest in `out` lists (plain names only: a name with a path in it is ignored)."""
    try:
        text = (out / MANIFEST).read_text(encoding="utf-8")
    except OSError:
        return set()
    return {n for n in text.split("\n") if n.endswith(".png") and "/" not in n and not n.startswith(".")}


class _Anchors:
    """The anchors a code-hosting site gives headings: lower case, punctuation out, spaces to '-', and
    '-1', '-2', ... after a repeated one."""

    def __init__(self, headings=()):
        self.seen, self.last = {}, None
        for heading in headings:
            self.add(heading)

    def add(self, heading: str) -> str:
        base = "".join(c for c in heading.lower() if c.isalnum() or c in " -_").replace(" ", "-")
        n = self.seen.get(base, 0)
        self.seen[base] = n + 1
        self.last = base if n == 0 else f"{base}-{n}"
        return self.last


def plots_only(handle, out: str | Path) -> list[Path]:
    """Write the study's PNGs into folder `out`; their paths."""
    with _staged(out) as tmp:
        data = _measure(handle)
        names = [p.name for p in plots.write(handle, data.trials, data.epochs, data.measured, tmp, data.claims)]
    return [Path(out) / name for name in names]


@contextlib.contextmanager
def _staged(out: str | Path):
    """A temporary folder inside `out` whose files are moved into `out` when the block succeeds: a
    failure leaves nothing half written. OSError (full disk, permissions) becomes BadInput."""
    out = check_out(out)
    try:
        out.mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".sweeper-report-", dir=out))
    except OSError as exc:
        raise BadInput(f"cannot write into {out}: {exc.strerror or exc}: write elsewhere") from None
    try:
        yield tmp
        for path in sorted(tmp.iterdir()):
            os.replace(path, out / path.name)
    except OSError as exc:
        raise BadInput(f"cannot write into {out}: {exc.strerror or exc}: free space or write elsewhere") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Data:
    trials: pd.DataFrame
    epochs: pd.DataFrame
    measured: pd.DataFrame
    claims: pd.DataFrame
    tuning: list  # a study tuned per configuration: (configuration, its tuning study's trials) each; else []


def _measure(handle) -> _Data:
    from sweeper import analysis

    trials, epochs = analysis.trials(handle), analysis.epochs(handle)
    measured = measures(handle, trials, epochs)
    return _Data(trials, epochs, measured, verdicts.claims(handle, trials, epochs, measured), _tuning(handle))


def _adjusted(studies: list) -> list:
    """The studies with their counted claims' verdicts decided on Holm's adjustment over the whole report."""
    if all(data.claims.empty for _, _, data in studies):  # sampled studies, or none with claims
        return studies
    joined = verdicts.adjust(pd.concat([data.claims for _, _, data in studies], keys=range(len(studies))))
    for i, (_, _, data) in enumerate(studies):
        if not data.claims.empty:
            data.claims = joined.loc[i]
    return studies


def _caveats(studies) -> list[str]:
    """What the reader must know before any verdict: shortened runs, less data than the posts had."""
    lines = []
    short = [h.spec for _, h, _ in studies if h.spec.post_length]
    if short:
        lines.append(f"**Not the posts' lengths.** Studies that trained another length than the post: {len(short)} "
                     f"of {len(studies)} (e.g. {short[0].length} instead of {short[0].post_length}). Their verdicts "
                     "are shown but not counted, since the post's length could change them.")
    smaller = [(h.spec, ours) for _, h, d in studies if (ours := verdicts.fewer_images(h.spec, d.trials))]
    if smaller:
        sizes = sorted({f"{ours:,} training images against the post's {spec.post_train_images:,}"
                        for spec, ours in smaller})
        lines.append(f"**Less data than the posts.** {len(smaller)} stud{'ies' if len(smaller) > 1 else 'y'} "
                     f"trained on {'; '.join(sizes)}. That "
                     "shifts absolute figures: the posts' own figures are shown for reference only, claims about an "
                     "absolute figure are not counted, and the verdicts judge the differences the posts claimed.")
    return [line for text in lines for line in (text, "")]


def _overview(studies, heads: dict) -> list[str]:
    """One row per study: trials done, the posts' counted claims by verdict, the rest, time; only when
    there is more than one study."""
    if len(studies) < 2:
        return []
    rows, total, other, spans, searches = [], pd.Series(dtype="int64"), 0, [], 0
    for part, handle, data in studies:
        counted = data.claims[data.claims["counted"]]["verdict"].value_counts()
        rest = int((~data.claims["counted"]).sum())
        total, other = total.add(counted, fill_value=0), other + rest
        link = handle.spec.heading.replace("[", "\\[").replace("]", "\\]")
        own = [_span(data.trials), *(_span(trials) for _, trials in data.tuning)]
        spans.append(own)
        searches += len(data.tuning)
        wall = _duration(data.trials)[0] + (f" (+ {_seconds(sum(own[1:]))} tuning)" if data.tuning else "")
        rows.append([part.title.split(":")[0] if part.title else "", f"[{link}](#{heads[id(handle)][1]})",
                     _done(data.trials), str(len(_seeds_run(data.trials))),
                     *(str(int(counted.get(v, 0))) for v in VERDICTS), str(rest), wall])
    whole = sum(x for own in spans for x in own)
    rows.append(["**all**", "", "", "", *(f"**{int(total.get(v, 0))}**" for v in VERDICTS), f"**{other}**",
                 f"**{_hours(whole)}**"])
    family = int(sum(d.claims["counted"].sum() for _, _, d in studies))
    note = ("The verdict columns count the posts' own conclusions (origin *post*) measured under the posts' "
            f"conditions, each decided on its p-value adjusted by Holm's method over these {family} claims (the "
            "claims tables give p and, in brackets, the adjusted p); *not counted*: our derived checks, untestable "
            "claims, and verdicts under conditions that could change them (each study's conditions table says "
            "which), judged on their own p.")
    columns = ["section", "study", "trials", "seeds", *VERDICTS, "not counted", "wall time"]
    time_note = (f"**Wall time of the whole run: {_hours(whole)}**, the studies' wall times summed ({searches} tuning "
                 "searches included), each the time during which at least one of its trials was running: the "
                 "studies ran one after another, some in several invocations, whose pauses are left out; a run "
                 "shared by several studies was trained once and copied in seconds into the others.")
    return ["## Overview", "", _table(columns, rows),
            "", note, "", time_note, "", *_shared_runs(studies)]


def _span(trials: pd.DataFrame) -> float:
    """The study's wall time: seconds during which at least one of its trials ran (the union of their
    start-to-end intervals), so that the pause between two invocations of a study run in parts is left out."""
    ran = trials.dropna(subset=["started", "finished"]).sort_values("started")
    total, start, end = 0.0, None, None
    for begun, ended in zip(ran["started"], ran["finished"]):
        if end is None or begun > end:
            total += (end - start).total_seconds() if end is not None else 0.0
            start, end = begun, ended
        else:
            end = max(end, ended)
    return total + ((end - start).total_seconds() if end is not None else 0.0)


def _hours(s: float) -> str:
    minutes = round(s / 60)
    return _seconds(s) if s < 3600 else f"{minutes // 60} h {minutes % 60} min"


def _tuning(handle) -> list[tuple[str, pd.DataFrame]]:
    """A study tuned per configuration (sweeper.isolation.LINK): (configuration, its tuning study's
    trials) for each; [] for others."""
    from sweeper import analysis, isolation, manager

    link = handle.study.user_attrs.get(isolation.LINK)
    if not isinstance(link, dict):
        return []
    arms = [c["label"] for c in handle.spec.configs()]
    return [(arm, analysis.trials(manager.open_study(name, handle.url))) for arm, name in zip(arms, link["tuning"])]


def _reused(trials: pd.DataFrame) -> pd.Series:
    """The trials that took a run another study trained ("study#trial" each), by index."""
    return trials[SHARED_FROM].dropna() if SHARED_FROM in trials else pd.Series(dtype="object")


def _sources(trials: pd.DataFrame) -> dict[str, int]:
    """The studies whose runs the trials reused, with how many of them each."""
    counts = {}
    for source in _reused(trials):
        study = str(source).rsplit("#", 1)[0]
        counts[study] = counts.get(study, 0) + 1
    return counts


def _shared_runs(studies) -> list[str]:
    """A paragraph on the groups of studies whose trials are the same runs (trained once, reused by the
    others): their verdicts are not independent. Nothing when no trial was reused."""
    groups = []  # [(study names, trials reused among them)]: studies joined by a reuse, transitively
    for _, handle, data in studies:
        for source, n in _sources(data.trials).items():
            pair = {handle.spec.name, source}
            joined = [g for g in groups if g[0] & pair]
            groups = [g for g in groups if g not in joined] + [
                (pair.union(*(names for names, _ in joined)), n + sum(k for _, k in joined))]
    if not groups:
        return []
    order = [handle.spec.name for _, handle, _ in studies]  # the report's order; studies outside it last
    words = []
    for names, n in groups:
        names = [f"`{name}`" for name in sorted(names, key=lambda x: (order.index(x) if x in order else len(order), x))]
        words.append(f"{', '.join(names[:-1])} and {names[-1]} ({n} trial{'s' if n != 1 else ''} reused)")
    return ["**Verdicts on shared runs.** Some trials are the very same training run in several studies (the same "
            "model, data set, configuration, length and seed: trained once, then reused), so these studies' verdicts "
            f"rest partly on the same runs and are not independent: {'; '.join(words)}.", ""]


def _superseded(studies, heads: dict) -> list[str]:
    """The appendix: each study's earlier claims, replaced after trials existed, with the verdicts they had."""
    from sweeper.manager import superseded

    lines = []
    for _, handle, _ in studies:
        for entry in superseded(handle.study):
            rows = [[r["claim"], "-" if r["verdict"] == verdicts.UNTESTABLE else
                     f"{r['metric']}: {r['x']}" + (f" vs {r['y']}" if r["y"] else "") + f", {r['target']}",
                     _number(r["effect"]), f"**{r['verdict']}**"] for r in entry["claims"]]
            lines += [f"### {handle.spec.heading}: claims `{entry['digest']}`, replaced {entry['replaced']}", "",
                      f"Replaced by claims `{entry['by']}`.", "",
                      _table(["the claim, as then written", "checked as", "effect", "verdict then"], rows), ""]
    return ["## Superseded claims", "", "Claims changed after their study had trials; each set is kept with the "
            "verdicts it had when it was replaced.", "", *lines] if lines else []


def _study(handle, data: _Data, folder: Path, level: str, titled: bool = True, known: dict | None = None) -> list[str]:
    """A study's part of the report (below its heading; `titled`: its title is that heading; `known`: the
    report's studies by name, as judged there)."""
    spec = handle.spec
    name = f"Study `{spec.name}`" + ("." if titled or not spec.title else f": *{spec.title}*.")
    lines = [name + (f" {spec.about}" if spec.about else ""), "", _setup(spec, data.trials), ""]
    chosen = _seeds_chosen(handle)
    if chosen:
        lines += [chosen, ""]
    if spec.is_grid:
        matched = _matched(spec, data.trials)
        lines += [f"{level}# Our figures beside the post's", "", _stats_table(handle, data, matched), "",
                  "Intervals: 95 % Student t over seeds. " + (
                      "*inside*/*outside*: whether the post's figure (one run) lies in the 95 % prediction "
                      "interval of one run of ours." if matched else
                      "The post's figures are for reference: they come from other conditions (more data or "
                      "another length), so no *inside*/*outside* is shown."), ""]
        if spec.conditions:
            lines += [f"{level}# Conditions: the post's and ours", "", conditions_table(spec), ""]
        if not data.claims.empty:
            own = data.claims["origin"].fillna("post") == "post"
            lines += [f"{level}# Claims and verdicts", "", f"Claims digest `{digest(spec.claims)}`.", ""]
            if own.any():
                lines += [_claims_table(data.claims[own]), ""]
            if (~own).any():
                lines += ["Our own checks (derived: not the post's conclusions, never counted):", "",
                          _claims_table(data.claims[~own]), ""]
    else:
        lines += [f"{level}# The best trials", "", _best_table(spec, data.trials), ""]
    paths = plots.write(handle, data.trials, data.epochs, data.measured, folder, data.claims)
    side, drawn = _isolation(handle, data, folder, known or {})
    if side:
        lines += [f"{level}# One setting for all against each at its best", "", *side]
        paths.insert(0, drawn)
    lines += [f"{level}# Plots", ""]
    lines += [f"![{_caption(p.name)}]({p.name})\n" for p in paths] or ["(none yet: no finished trial)", ""]
    return lines


def _isolation(handle, data: _Data, folder: Path, known: dict) -> tuple[list[str], Path | None]:
    """For a study tuned per configuration (sweeper.isolation.LINK): each claim at the post's setting beside
    each configuration at its best, the settings found, and the isolation plot; ([], None) for others. The
    claims at the post's setting are those of the study `known` holds by that name when the report has it
    (judged as its own section shows them, Holm-adjusted where counted), else measured here."""
    from sweeper import isolation, manager

    link = handle.study.user_attrs.get(isolation.LINK)
    if not isinstance(link, dict):
        return [], None
    at_post = known.get(link["fixed"]) or _measure(manager.open_study(link["fixed"], handle.url))
    arms = [c["label"] for c in handle.spec.configs()]
    posts = isolation.post_settings(link, len(arms))
    keys = list(posts[0])
    settings = _table(["configuration", *(f"the post's {k}" for k in keys), *(f"its best {k}" for k in keys)],
                      [[arm, *(short(p[k]) for k in keys), *(short(b[k]) for k in keys)]
                       for arm, p, b in zip(arms, posts, link["best"])])
    rows = []
    for (number, ours), (_, theirs) in zip(data.claims.iterrows(), at_post.claims.iterrows()):
        rows.append([str(number + 1), theirs["claim"], _effect(theirs), theirs["verdict"], _effect(ours),
                     ours["verdict"]])
    side = _table(["#", "the claim", "at the post's setting", "verdict", "each at its best", "verdict"], rows)
    figure = plots.isolation(handle.spec, data.tuning, keys[0], [p[keys[0]] for p in posts], at_post.measured,
                             data.measured)
    drawn = plots._save(figure, plots.png_path(folder, handle.spec.name, "isolation"))
    intro = (f"Each configuration's {', '.join(keys)} was tuned on validation error (studies "
             f"`{link['tuning'][0]}` to `{link['tuning'][-1]}`, on a seed none of this study's uses, so that no "
             f"figure below was chosen on), then every configuration re-ran at its best with the study's seeds. "
             f"The post compared them at one setting: the table sets that comparison (study `{link['fixed']}`, "
             f"its verdicts as its own section gives them, Holm-adjusted where counted) beside this one (our "
             f"checks, never counted, each on its own p).")
    return [intro, "", settings, "", side, ""], drawn


def _effect(row) -> str:
    """A claim's effect with its interval, or '-'."""
    if not math.isfinite(row["effect"]):
        return "-"
    return f"{_number(row['effect'])} [{_number(row['effect_low'])}, {_number(row['effect_high'])}]"


def _seeds_run(trials: pd.DataFrame) -> list[int]:
    """The training seeds of the trials that ran to an end (complete, or failed by divergence)."""
    if SEED not in trials:
        return []
    return sorted(trials.loc[trials["state"].isin(["COMPLETE", "FAIL"]), SEED].dropna().astype(int).unique())


def _seeds_chosen(handle) -> str:
    """How --repeats auto chose the study's seeds (sweeper.power), in a sentence; empty when it did not."""
    from sweeper import power

    choice = power.Choice.from_attr(handle.study.user_attrs.get(power.ATTR))
    return "" if choice is None else "**Seeds by power:** " + choice.words() + "."


def _setup(spec, trials: pd.DataFrame) -> str:
    fixed = ", ".join(f"{k} {short(v)}" for k, v in spec.fixed.items()) or "the model's defaults"
    if spec.is_grid:
        n_configs = len(spec.configs())
        seeds = spec.grid_space().get(SEED, [spec.seed])
        ran = _seeds_run(trials)
        seeds = [s for s in seeds if s in ran] or seeds  # seeds by power: the grid holds more than were chosen
        what = (f"{n_configs} configuration{'s' if n_configs != 1 else ''} x {len(seeds)} seed"
                f"{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})")
    else:
        what = f"{spec.n_trials} trials chosen by the {spec.sampler['name']} sampler"
    length = _length(spec, trials)
    wall, compute = _duration(trials)
    sources = _sources(trials)
    shared = (f" **Shared runs:** {sum(sources.values())} of {len(trials)} trials reused runs that other studies "
              "trained (" + ", ".join(f"{n} from `{name}`" for name, n in sources.items()) + "): not trained "
              "here, and not in the training time below." if sources else "")
    ours = verdicts.fewer_images(spec, trials)
    data = (f" **Less data than the post:** {ours:,} training images against its {spec.post_train_images:,}, so its "
            "absolute figures are for reference and the verdicts judge differences." if ours else "")
    return (f"**Setup.** {MODELS.get(spec.model, spec.model)} on `{spec.dataset}`: {what}, {length}. Fixed: {fixed}."
            f"{data}{shared} **Time:** {_done(trials)} trials done; {wall} of wall time (while any of its "
            f"trials ran, pauses between invocations left out), {compute} of training in all.")


def _length(spec, trials: pd.DataFrame) -> str:
    """The training length in steps and in epochs, as the trials ran it, and the post's when it was cut."""
    done = trials.dropna(subset=["steps_per_epoch"]) if "steps_per_epoch" in trials else trials.iloc[:0]
    text = f"{spec.length} each"
    if len(done):
        per, images = int(done["steps_per_epoch"].max()), int(done["train_images"].max())
        text += (f" ({int(done['steps_run'].max()):,} steps of {per:,} per epoch over {images:,} training images"
                 if spec.steps is None else
                 f" ({spec.steps / per:.1f} epochs of {per:,} steps over {images:,} training images") + ")"
    return text + (f"; the post: {spec.post_length}" if spec.post_length else "")


def _matched(spec, trials: pd.DataFrame) -> bool:
    """Whether the study ran at the post's length on as much training data: only then is one of our runs
    comparable with the post's figure."""
    return spec.post_length is None and not verdicts.fewer_images(spec, trials)


def _stats_table(handle, data: _Data, matched: bool = True) -> str:
    frame = config_stats(handle, data.measured)
    head = ["configuration", "n", "validation accuracy [95 % CI]", "the post", "test accuracy [95 % CI]",
            "the post", "final train loss", "epochs", "the post says"]
    rows = []
    for _, r in frame.iterrows():
        rows.append([r["config"], f"{r['n']}" + (f" (+{r['diverged']} diverged)" if r["diverged"] else ""),
                     _interval(r, "valid_accuracy"), _post(r, "valid", matched), _interval(r, "test_accuracy"),
                     _post(r, "test", matched), _number(r["train_loss_mean"]), _number(r["epochs_run_mean"], ".3g"),
                     _says(handle.spec, r["config"])])
    return _table(head, rows)


def _says(spec, config: str) -> str:
    """What the post says of a configuration in words, with the length its figures are from."""
    said = []
    for ref in (r for r in spec.references if r["config"] == config):
        figures = [f"{name} {ref[key]:.4f}" for key, name in (("valid_accuracy", "validation"),
                                                               ("test_accuracy", "test")) if key in ref]
        text = "; ".join(t for t in ("" if at_end(ref) else ", ".join(figures), ref["outcome"], ref["note"]) if t)
        text = f"at {ref['at']}" + (f": {text}" if text else "") if ref["at"] else text
        if text and text not in said:
            said.append(text)
    return "; ".join(said)


def conditions_table(spec) -> str:
    """The study's conditions as a Markdown table: setting, the post's value, ours, whether they match."""
    rows = [[c["setting"], c["post"], c["ours"],
             "yes" if c["match"] else
             f"**no**: {'could change verdicts' if c['changes'] == 'verdicts' else 'shifts absolute figures'}"
             + (f" of claims {', '.join(map(str, c['claims']))}" if c.get("claims") else "")
             + (f" ({c['why']})" if c["why"] else "")] for c in spec.conditions]
    return _table(["setting", "the post", "ours", "match"], rows)


def _claims_table(frame: pd.DataFrame) -> str:
    head = ["#", "the claim", "checked as", "effect [95 % CI]", "P(x > y) [95 % CI]", "detectable (claimed)",
            "p (Holm)", "verdict"]
    rows = []
    for number, r in frame.iterrows():
        checked = ("-" if r["kind"] == verdicts.UNTESTABLE else f"{r['metric']}: " + (
            f"\"{r['x']}\" vs \"{r['y']}\", {r['target']}" if isinstance(r["y"], str)
            else f"\"{r['x']}\" {r['target']}"))
        effect = (f"{_number(r['effect'])} [{_number(r['effect_low'])}, {_number(r['effect_high'])}]"
                  if math.isfinite(r["effect"]) else "-")
        better = (f"{r['prob_better']:.2f} [{r['prob_better_low']:.2f}, {r['prob_better_high']:.2f}]"
                  if math.isfinite(r["prob_better"]) else "-")
        p = _number(r["p_value"], ".2g") + (f" ({_number(r['p_adjusted'], '.2g')})"
                                             if math.isfinite(r["p_adjusted"]) else "")
        verdict = f"**{r['verdict']}**" + "".join(f" ({r[k]})" for k in ("why", "note") if r.get(k))
        if r["origin"] == "post" and not r["counted"] and r["verdict"] != verdicts.UNTESTABLE \
                and "not counted" not in r["note"]:
            verdict += " *(not counted)*"
        power = _number(r["detectable"], ".2g") + (f" ({_number(r['claimed'], '.2g')})"
                                                    if math.isfinite(r.get("claimed", math.nan)) else "")
        rows.append([str(number + 1), r["claim"], checked, effect, better, power, p, verdict])
    return _table(head, rows)


def _best_table(spec, trials: pd.DataFrame) -> str:
    best = plots.best_trials(trials)
    head = ["trial", *spec.space, "validation error", "test error", "epochs"]
    rows = [[str(r["trial"]), *(short(r[p]) for p in spec.space), _number(r["valid_error"]),
             _number(r["test_error"]), _number(r["epochs_run"], ".3g")] for _, r in best.iterrows()]
    return _table(head, rows) if rows else "(no complete trial yet)"


def _interval(row, metric: str) -> str:
    mean, low, high = row[f"{metric}_mean"], row[f"{metric}_low"], row[f"{metric}_high"]
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.4f}" + (f" [{low:.4f}, {high:.4f}]" if math.isfinite(low) else "")


def _post(row, short_metric: str, matched: bool = True) -> str:
    value = row[f"post_{short_metric}_accuracy"]
    if not math.isfinite(value):
        return ""
    inside = row[f"post_{short_metric}_inside"] if matched else pd.NA
    where = "" if pd.isna(inside) else " *inside*" if inside else " *outside*"
    return f"{value:.4f}{where}"


def _number(value, fmt: str = ".4f") -> str:
    """A figure for a table: `fmt`, or scientific notation when it would show as zero; '-' when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    text = format(value, fmt)
    if value != 0 and float(text) == 0:
        return f"{value:.1e}"
    return text


def _done(trials: pd.DataFrame) -> str:
    states = trials["state"].value_counts()
    done = int(states.get("COMPLETE", 0) + states.get("PRUNED", 0) + states.get("FAIL", 0))
    return f"{done}" + (f" ({int(states.get('FAIL', 0))} failed)" if states.get("FAIL", 0) else "")


def _duration(trials: pd.DataFrame) -> tuple[str, str]:
    """(wall time while any trial ran (_span), summed training seconds), in words. A reused
    trial's seconds are those of the trial it copied, trained in another study: not counted here."""
    if trials.empty or trials["started"].isna().all():
        return "-", "-"
    return _seconds(_span(trials)), _seconds(float(trials["seconds"].drop(_reused(trials).index).sum()))


def _seconds(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {int(round(s % 60))} s"


def _caption(name: str) -> str:
    kind = name.rsplit(".", 2)[-2]
    return {"forest": "the claims: each one's effect with its 95 % interval, margin, the post's own difference "
                      "and verdict (claims without a measured effect are left out)",
            "isolation": "each configuration's search over the tuned parameter, and the comparison at the "
                         "post's setting beside each at its best",
            "curves": "learning curves", "loss": "training loss", "accuracy": "accuracy per configuration",
            "success": "success rate per configuration",
            "importance": "parameter importances", "slice": "slice plot"}.get(kind, kind)


def _table(head: list[str], rows: list[list[str]]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, head)) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)

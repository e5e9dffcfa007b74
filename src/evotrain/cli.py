"""The `evotrain` command line."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup, TyperOption

from evotrain import __version__
from evotrain.campaign.audit import audit_campaign
from evotrain.campaign.cancel import cancel_unfinished_jobs, unfinished_jobs
from evotrain.campaign.init import init_campaign, open_campaign
from evotrain.campaign.loop import Campaign, RoundFailed
from evotrain.campaign.status import RoundStatus, campaign_status
from evotrain.campaign.store import CampaignStore
from evotrain.campaign.trial_cli import trial_app
from evotrain.campaign.verdict import Verdict, campaign_verdict, promotion_line, verdict_line
from evotrain.errors import ConfigError, EvotrainError
from evotrain.executors.factory import EXECUTOR_KINDS, build_stoppable
from evotrain.executors.stopping import StoppableExecutor, stop_on_signals
from evotrain.external.config import parse_external_spec
from evotrain.hf_lora.cli import substrate_app
from evotrain.leaderboard.cli import leaderboard_app
from evotrain.records.events import CandidatePlan
from evotrain.records.evidence import Evidence
from evotrain.records.layout import CampaignPaths
from evotrain.records.manifest import Manifest
from evotrain.records.policy import Policy
from evotrain.substrate.spec import load_spec
from evotrain.workers.select import AGENT_KINDS, META_KINDS, AgentChoice, build_meta_agent, build_worker


class HelpWithoutBoolTypes(TyperGroup):
    """Typer's help shows a `<bool>` type beside every flag (`--watch / --no-watch`, `--help`), which says
    nothing a flag does not already say: this group blanks it for every command below it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _blank_flag_types(self)


def _blank_flag_types(command: Any) -> None:
    for param in command.params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    help_option = command.get_help_option(typer.Context(command))
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _blank_flag_types(sub)


app = typer.Typer(
    name="evotrain",
    help="Autonomous post-training: rounds of forked candidates, an external target, and an auditable record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=HelpWithoutBoolTypes,
)
app.add_typer(leaderboard_app, name="leaderboard")
app.add_typer(trial_app, name="trial")
app.add_typer(substrate_app, name="substrate")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # never wrap a path in an error


RUN_HELP = "the campaign folder (made by `evotrain init`)"
LONG_FLOAT = re.compile(r"-?\d+\.\d{6,}")


def _fail(exc: EvotrainError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(exc.render())}", highlight=False)  # `[metric]` is no markup
    return typer.Exit(code=2)


def _rounded(text: str) -> str:
    """A policy reason as printed: a float written at full precision (0.25882352941176473) shown with 4
    significant digits; the files keep every digit."""
    return LONG_FLOAT.sub(lambda m: f"{float(m.group()):.4g}", text)


def _version(value: bool) -> None:
    if value:
        console.print(f"evotrain {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Autonomous post-training: rounds of forked candidates, an external target, and an auditable record."""


@app.command()
def init(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="the campaign folder to create")],
    substrate: Annotated[Path, typer.Option(help="folder holding evotrain.toml")],
    constitution: Annotated[Path | None, typer.Option(help="constitution Markdown (default: the one shipped)")] = None,
    external: Annotated[
        str | None, typer.Option(help="external target: a TOML spec file, or `command:<shell command>`")
    ] = None,
    seed: Annotated[int, typer.Option(help="campaign seed (workers and trial seeds derive from it)")] = 0,
) -> None:
    """Snapshot a substrate and a constitution, read-only and hash-locked, into a new campaign folder."""
    try:
        target = parse_external_spec(external) if external else None
        config = init_campaign(run, substrate, constitution=constitution, external=target, seed=seed)
    except EvotrainError as exc:
        raise _fail(exc) from None
    external_name = config.external.name if config.external else "none"
    console.print(
        f"[green]initialised[/] {run}  substrate {config.substrate_sha256[:12]}  "
        f"constitution {config.constitution_sha256[:12]}  external: {external_name}"
    )


class RichObserver:
    """Live progress: a bar per round, a line per finished candidate, and the policy's changes when a round closes.

    What each running candidate is doing (stage, step, last metric) is read from its files by `CampaignProgress`,
    the same view `evotrain status --watch` shows for a campaign driven elsewhere; so is the bar's count, so the
    bar and the table never disagree.
    """

    def __init__(self, progress: Progress, after_round: Callable[[], None] | None = None) -> None:
        self.progress = progress
        self.round_task: TaskID | None = None
        self.after_round = after_round  # e.g. log the campaign to MLflow

    def round_started(self, round_no: int, plans: list[CandidatePlan]) -> None:
        self.round_task = self.progress.add_task(f"round {round_no}", total=len(plans))

    def candidate_stage(self, round_no: int, name: str, stage: str) -> None:
        pass  # the candidates table reads each candidate's stage from its trace

    def candidate_finished(self, round_no: int, manifest: Manifest) -> None:
        name = manifest.candidate_id.split("/", 1)[1]
        score = f"{manifest.selected.objective:.4f}" if manifest.selected else "-"
        status = manifest.failure.failure_class if manifest.failure else "ok"
        self.progress.console.print(f"  r{round_no} {name:<28} {status:<14} objective {score}", highlight=False)
        if manifest.failure:
            self.progress.console.print(f"      {manifest.failure.one_line()}", highlight=False, markup=False)
        for warning in manifest.training_warnings:
            self.progress.console.print(
                f"  [yellow]warning[/]: {manifest.candidate_id}: training summary {warning} is not a finite number "
                "(left out of the manifest's training values)",
                highlight=False,
            )

    def round_closed(self, round_no: int, evidence: Evidence, next_policy: Policy) -> None:
        for change in next_policy.changelog:
            self.progress.console.print(f"  policy → {change.action}: {_rounded(change.reason)}", highlight=False)
        if self.round_task is not None:
            self.progress.remove_task(self.round_task)
        self.progress.console.print(f"[bold]round {round_no} closed[/]", highlight=False)
        if self.after_round is not None:
            self.after_round()


class CampaignProgress(Progress):
    """The round bar with, below it, the running round's candidates as their files show them.

    The files are re-read at most every `reread_s` seconds (the display refreshes more often).
    """

    def __init__(self, paths: CampaignPaths, *columns: ProgressColumn, reread_s: float = 1.0, **kwargs: Any) -> None:
        self.paths = paths
        self.reread_s = reread_s
        self._candidates: RenderableType = ""
        self._read_at = 0.0
        super().__init__(*columns, **kwargs)  # last: it renders once, which needs the fields above

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        if time.monotonic() - self._read_at >= self.reread_s:
            self._read_at = time.monotonic()
            try:
                running = [r for r in campaign_status(self.paths) if r.state == "running"]
                self._candidates = Group(*(_candidates_table(r) for r in running))
                for r in running:  # the bar counts what the table counts: finished manifests
                    for task in self.tasks:
                        if task.description == f"round {r.round}":
                            self.update(task.id, completed=r.finished, total=len(r.candidates))
            except (EvotrainError, OSError, ValueError):
                pass  # a file between writes: keep the last view, the next read catches up
        yield self._candidates


STAGE_LINES_S = 5.0  # how often StageLines re-reads the files


class StageLines:
    """Where the output is not a terminal (a pipe, a log file), the live table is not drawn: print a line instead
    each time a running candidate's stage changes (`train`, `evaluate step-00150`, ...), read from the same
    files, every STAGE_LINES_S seconds, so a piped run is never silent for a whole trial."""

    def __init__(self, paths: CampaignPaths, out: Console) -> None:
        self.paths = paths
        self.out = out
        self._seen: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stage-lines", daemon=True)

    def __enter__(self) -> StageLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(STAGE_LINES_S):
            self.poll()

    def poll(self) -> None:
        try:
            running = [r for r in campaign_status(self.paths) if r.state == "running"]
        except (EvotrainError, OSError, ValueError):
            return  # a file between writes: the next read catches up
        for r in running:
            for c in r.candidates:
                if not c.finished and self._seen.get(c.candidate_id) != c.stage:
                    self._seen[c.candidate_id] = c.stage
                    name = c.candidate_id.split("/", 1)[1]
                    self.out.print(f"  r{r.round} {name:<28} {c.stage}", highlight=False)


@app.command()
def run(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)],
    rounds: Annotated[
        int, typer.Option(help="total rounds the campaign should have (re-running resumes; more rounds extend it)")
    ] = 2,
    workers: Annotated[
        int | None,
        typer.Option(help="candidates per round, the anchor included [default: \\[run] workers in campaign.toml, 4]"),
    ] = None,
    parallel: Annotated[
        int | None, typer.Option(help="candidates run at once [default: \\[run] parallel in campaign.toml, 2]")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="must equal the campaign seed fixed at init, if given")] = None,
    executor: Annotated[
        str | None, typer.Option(help="where steps run: local or slurm (default: \\[executor] kind in campaign.toml)")
    ] = None,
    # ---- agent workers and meta agent (docs/agents.md) ----
    agent: Annotated[
        str, typer.Option(help="worker backend: mutator, guided, optuna-tpe, random, claude-code, codex or openai")
    ] = "mutator",
    meta: Annotated[
        str, typer.Option(help="meta agent: rules, llm or none (keeps the policy: for search baselines)")
    ] = "rules",
    agent_model: Annotated[str | None, typer.Option(help="model of the agent worker (and of the llm meta)")] = None,
    agent_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. a local vLLM")] = None,
    meta_model: Annotated[str | None, typer.Option(help="model of the llm meta agent (default: --agent-model)")] = None,
    agent_turns: Annotated[int | None, typer.Option(help="max turns per worker")] = 30,
    agent_wall_s: Annotated[float | None, typer.Option(help="max wall seconds per worker")] = 1800.0,
    agent_tokens: Annotated[int | None, typer.Option(help="max tokens per worker")] = 400_000,
    agent_usd: Annotated[float | None, typer.Option(help="max USD per worker")] = None,
    round_tokens: Annotated[int | None, typer.Option(help="max tokens of all workers of a round")] = None,
    round_usd: Annotated[float | None, typer.Option(help="max USD of all workers of a round")] = None,
    price_in: Annotated[float, typer.Option(help="USD per 1M input tokens (default 0: a local model)")] = 0.0,
    price_out: Annotated[float, typer.Option(help="USD per 1M output tokens")] = 0.0,
    keep_going: Annotated[
        bool,
        typer.Option(
            "--keep-going",
            help="go on after a round in which no candidate succeeded (default: stop there, exit 2; "
            "or \\[run] keep_going = true in campaign.toml)",
        ),
    ] = False,
    mlflow: Annotated[
        str | None,
        typer.Option(
            metavar="URI",
            help="log the campaign to MLflow as rounds close, e.g. sqlite:///abs/mlflow.db "
            "(default: \\[tracking] mlflow in campaign.toml; docs/tracking.md)",
        ),
    ] = None,
) -> None:
    """Run, or resume after a kill, the campaign's rounds."""
    try:
        _, config = open_campaign(run_dir)
        if seed is not None and seed != config.seed:
            raise EvotrainError(
                f"--seed {seed} differs from the campaign seed {config.seed} fixed at init",
                path=run_dir / "campaign.toml",
                fix="drop --seed, or init a new campaign with the seed you want",
            )
        agents = _agent_choice(
            agent, meta, agent_model, agent_base_url, meta_model,
            [agent_turns, agent_wall_s, agent_tokens, agent_usd, round_tokens, round_usd], price_in, price_out,
        )  # fmt: skip
        tracking_uri = mlflow or (config.tracking.mlflow if config.tracking else None)
        after_round = _mlflow_logger(run_dir, tracking_uri) if tracking_uri else None
        demo = _demo_without_server(run_dir)
        with _demo_server(demo) if demo is not None else nullcontext():
            _run_with_progress(
                run_dir,
                rounds=rounds,
                workers=workers,
                parallel=parallel,
                executor=executor,
                agents=agents,
                keep_going=True if keep_going else None,
                after_round=after_round,
            )
        console.print(verdict_line(_verdict(run_dir)), highlight=False, soft_wrap=True)
    except EvotrainError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        err_console.print(f"[yellow]stopped[/]: running steps cancelled; `evotrain run {run_dir}` resumes")
        raise typer.Exit(code=130) from None


def _mlflow_logger(run_dir: Path, uri: str) -> Callable[[], None]:
    """Log what is already there now (a wrong URI or a missing MLflow stops `run` before a round starts), then
    return the logger each closed round calls; one that fails then only warns: the campaign goes on."""
    from evotrain.tracking.mlflow import log_campaign

    logged = log_campaign(run_dir, uri)
    console.print(f"MLflow: logging to {logged.uri}, experiment {logged.experiment!r}", highlight=False, soft_wrap=True)

    def after_round() -> None:
        try:
            log_campaign(run_dir, uri)
        except Exception as exc:  # a tracking server down must not stop the campaign; the files have it all
            err_console.print(f"[yellow]MLflow logging failed[/]: {escape(str(exc))}; `evotrain mlflow {run_dir}` "
                              "logs the campaign later", highlight=False)  # fmt: skip

    return after_round


def _demo_without_server(run_dir: Path) -> Any:
    """The demo a campaign belongs to when its leaderboard is not already served (URL_ENV unset), else None."""
    from evotrain.demo import URL_ENV, demo_of

    return demo_of(run_dir) if os.environ.get(URL_ENV) is None else None


def _demo_server(demo: Any) -> Any:
    from evotrain.demo import demo_leaderboard

    console.print(f"a demo campaign: serving its leaderboard from {demo.root / 'hidden'} for the run", highlight=False)
    return demo_leaderboard(demo)


def _verdict(run_dir: Path, private: dict[str, float] | None = None) -> Verdict:
    paths, _ = open_campaign(run_dir)
    return campaign_verdict(CampaignStore(paths), sign=load_spec(paths.substrate).metric.sign, private=private)


def _agent_choice(
    agent: str, meta: str, model: str | None, base_url: str | None, meta_model: str | None,
    limits: list[Any], price_in: float, price_out: float,
) -> AgentChoice:  # fmt: skip
    """`--agent`/`--meta` and the budget options, validated (a wrong value is a ConfigError, not a traceback)."""
    if agent not in AGENT_KINDS or meta not in META_KINDS:
        raise ConfigError(
            f"unknown backend: --agent {agent!r} / --meta {meta!r}",
            fix=f"--agent {'|'.join(AGENT_KINDS)}, --meta {'|'.join(META_KINDS)}",
        )
    names = ("max_turns", "max_wall_s", "max_tokens", "max_usd", "round_tokens", "round_usd")
    try:
        return AgentChoice.model_validate(
            {
                "agent": agent, "meta": meta, "model": model, "base_url": base_url, "meta_model": meta_model,
                "price": {"input_per_mtok": price_in, "output_per_mtok": price_out},
                "budget": dict(zip(names, limits, strict=True)),
            }
        )  # fmt: skip
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid agent options: {problems}", fix="see `evotrain run --help`") from None


def _run_with_progress(
    run_dir: Path,
    *,
    rounds: int,
    workers: int | None,
    parallel: int | None,
    executor: str | None = None,
    agents: AgentChoice | None = None,
    keep_going: bool | None = None,
    after_round: Callable[[], None] | None = None,
) -> None:
    started = time.monotonic()
    paths, _ = open_campaign(run_dir)
    piped = StageLines(paths, console) if not console.is_terminal else nullcontext()
    with (
        piped,
        CampaignProgress(
            paths,
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            refresh_per_second=4,
        ) as progress,
    ):
        stoppable = _executor_for(run_dir, executor)
        with stop_on_signals(stoppable, say=lambda msg: err_console.print(msg, highlight=False)):
            agents = agents or AgentChoice()
            campaign = Campaign(
                run_dir,
                executor=stoppable,
                observer=RichObserver(progress, after_round),
                worker=build_worker(agents),
                meta_agent=build_meta_agent(agents),
            )
            try:
                campaign.run(rounds=rounds, workers=workers, parallel=parallel, keep_going=keep_going)
            except RoundFailed:
                console.print(_rounds_table(campaign_status(paths)))
                raise
    console.print(f"[green]done[/] in {time.monotonic() - started:.0f} s — `evotrain report {run_dir}` for the report")
    console.print(_rounds_table(campaign_status(paths)))


def _score(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"


def _rounds_table(rounds: list[RoundStatus]) -> Table:
    table = Table(title="campaign")
    columns = ("round", "state", "candidates", "finished", "ok", "best candidate objective", "best external submitted")
    for col in columns:
        table.add_column(col)
    for r in rounds:
        ok = sum(1 for c in r.candidates if c.stage == "done")
        table.add_row(
            str(r.round),
            r.state,
            str(len(r.candidates)),
            str(r.finished),
            str(ok),
            _score(r.best_objective),
            _score(r.best_external),
        )
    return table


def _candidates_table(r: RoundStatus) -> Table:
    table = Table(title=f"round {r.round}: {r.finished}/{len(r.candidates)} candidates finished", title_justify="left")
    for col in ("candidate", "axis", "stage", "for", "checkpoints", "last eval (objective)", "objective", "external"):
        table.add_column(col, no_wrap=True)
    now = time.time()
    for c in r.candidates:
        last = f"{_score(c.last_metric)} {c.last_metric_checkpoint}" if c.last_metric is not None else "-"
        step = f"{c.checkpoints}, newest {c.step}" if c.step else "-"
        since = f"{now - c.since:.0f} s" if c.since is not None and not c.finished else ""
        stage = f"[red]{c.stage}[/]" if c.finished and c.stage != "done" else c.stage
        axis = c.axis or c.role
        table.add_row(c.candidate_id, axis, stage, since, step, last, _score(c.objective), _score(c.external))
    return table


def verdict_view(verdict: Verdict, *, held_out_label: str = "held out") -> RenderableType:
    """The campaign's story in a few lines: external before and after, promotions, what it stopped trusting."""
    table = Table(title=f"what the campaign did ({verdict.rounds} round(s))", show_header=True, title_justify="left")
    table.add_column("")
    table.add_column("candidate")
    table.add_column("external (what the loop saw)", justify="right")
    if verdict.private:
        table.add_column(held_out_label, justify="right")
    before = verdict.substrate.candidate_id if verdict.substrate else "—"
    after = verdict.pick.candidate_id if verdict.pick else "—"
    rows = [
        ("before: the substrate's recipe", before, verdict.external_before, verdict.private_before),
        ("after: the final pick (best external)", after, verdict.pick.external if verdict.pick else None,
         verdict.private_after),
    ]  # fmt: skip
    for label, who, public, private in rows:
        cells = [label, who, _score(public)] + ([_score(private)] if verdict.private else [])
        table.add_row(*cells)
    lines: list[RenderableType] = [Text(verdict_line(verdict), style="bold"), table]
    if verdict.promotions:
        lines.append("[bold]promoted[/] (the standing recipe the next round forks):")
        lines += [f"  {escape(promotion_line(p))}" for p in verdict.promotions]
    else:
        lines.append("[bold]promoted[/]: nothing; the standing recipe is the substrate's")
    if verdict.standing_changes:
        lines.append("[bold]final standing recipe[/]: " + "; ".join(verdict.standing_changes))
    if verdict.trust:
        lines.append("[bold]stopped trusting[/] (the dev signal the loop no longer follows):")
        lines += [f"  round {d.round}: {d.action}: {escape(_rounded(d.reason))}" for d in verdict.trust]
    else:
        lines.append("[bold]stopped trusting[/]: nothing; no dev domain was flagged as decoupled from the external")
    return Group(*lines)


@app.command()
def summary(run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)]) -> None:
    """What a campaign did: external before and after, what it promoted, what it stopped trusting and why."""
    try:
        console.print(verdict_view(_verdict(run_dir)))
    except EvotrainError as exc:
        raise _fail(exc) from None


@app.command()
def result(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)],
    export: Annotated[
        Path | None,
        typer.Option(help="a new folder to copy the deliverable into: recipe files, diff, checkpoint, README"),
    ] = None,
) -> None:
    """The campaign's result: the verdict, the final standing recipe as a diff, the promoted changes with their
    gains and intervals, and the best checkpoint; --export copies them into a folder."""
    from evotrain.report.model import report_title
    from evotrain.result import export_result  # peft packaging is only imported by the command that needs it

    try:
        _, config = open_campaign(run_dir)
        verdict = _verdict(run_dir)
        console.print(verdict_view(verdict))
        if verdict.standing.diff:
            source = verdict.standing_source
            console.print(f"[bold]final standing recipe, as a diff against the substrate[/] (from {source}):")
            console.print(verdict.standing.diff, highlight=False, markup=False)
        else:
            console.print("[bold]final standing recipe[/]: the substrate's, unchanged (no diff)")
        checkpoint = verdict.best_checkpoint
        if checkpoint is not None and verdict.pick is not None:
            who = verdict.pick.candidate_id
            console.print(f"[bold]best checkpoint[/] ({who}, the final pick): {checkpoint}", highlight=False)
            if not verdict.pick_is_standing:
                console.print("  it was trained by a recipe other than the standing one (`--export` writes both diffs)")
        if export is not None:
            paths = CampaignPaths(run_dir)
            title = report_title(config.name, paths.root, load_spec(paths.substrate).name)
            done = export_result(verdict, export, title=title)
            console.print(f"[green]exported[/] {done.root}: {', '.join(done.files)}", highlight=False)
            for note in done.notes:
                console.print(f"  [yellow]not exported[/]: {note}", highlight=False)
    except EvotrainError as exc:
        raise _fail(exc) from None


def _status_view(paths: CampaignPaths) -> Group:
    rounds = campaign_status(paths)
    running = [_candidates_table(r) for r in rounds if r.state == "running"]
    return Group(_rounds_table(rounds), *running, *_failure_lines(rounds))


def _failure_lines(rounds: list[RoundStatus]) -> list[Text]:
    """Each failed candidate's class and message, one line each (the manifest holds the same text)."""
    failed = [(r.round, c) for r in rounds for c in r.candidates if c.failure]
    if not failed:
        return []
    lines = [Text(f"failed candidates ({len(failed)}):", style="bold red")]
    lines += [Text(f"  {c.candidate_id}: {c.failure}") for _, c in failed]
    return lines


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="where the demo's substrate and campaign go")] = Path(
        "runs/demo"
    ),
    quick: Annotated[
        bool, typer.Option(help="1 round of 2 candidates (about 2 minutes on two cores) instead of 4 × 8")
    ] = False,
    rounds: Annotated[
        int | None,
        typer.Option(help="total rounds; re-run with more to extend a finished demo \\[default: 4, --quick 1]"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="candidates per new round, the anchor included \\[default: 8, --quick 2]")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed for the puzzles and the campaign")] = 0,
) -> None:
    """Build the embedded puzzles substrate and run a campaign on it, offline on CPU (re-running resumes)."""
    from evotrain.demo import FULL, QUICK, demo_leaderboard, held_out_scores, prepare_demo

    plan = QUICK if quick else FULL
    rounds = rounds if rounds is not None else plan.rounds
    workers = workers if workers is not None else plan.workers
    root = directory / ("quick" if quick else "full")
    try:
        if rounds < 1 or workers < 2:
            raise EvotrainError(
                f"--rounds {rounds} --workers {workers}: a round needs the anchor and at least one worker",
                fix="pass --rounds 1 or more and --workers 2 or more",
            )
        with console.status("preparing the puzzles substrate") as spinner:
            paths = prepare_demo(root, seed=seed, say=lambda msg: spinner.update(msg))
        console.print(f"campaign {paths.campaign}: {rounds} round(s) × {workers} candidates")
        with demo_leaderboard(paths):  # the external target: a leaderboard server, stopped after the run
            _run_with_progress(paths.campaign, rounds=rounds, workers=workers, parallel=plan.parallel)
        verdict = _verdict(paths.campaign, private=held_out_scores(paths))
    except EvotrainError as exc:
        raise _fail(exc) from None
    console.print(verdict_view(verdict, held_out_label="held-out half of the board, never seen by the loop"))
    console.print(f"evidence and policies: {paths.campaign}/rounds/*/evidence.md, policy.md", highlight=False)
    console.print(
        f"`evotrain result {paths.campaign} --export DIR` hands over the recipe and checkpoint; "
        f"`evotrain demo{' --quick' if quick else ''} --rounds {rounds + 2}` extends the campaign",
        highlight=False,
    )


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)],
    watch: Annotated[bool, typer.Option(help="keep re-reading the files and redraw until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(help="seconds between re-reads with --watch")] = 2.0,
) -> None:
    """Where a campaign stands, read from its files (works for a campaign run elsewhere, e.g. on a cluster)."""
    try:
        paths, _ = open_campaign(run_dir)
        if not watch:
            console.print(_status_view(paths))
            return
        if interval <= 0:
            raise EvotrainError(f"--interval {interval} must be positive", fix="pass e.g. --interval 2")
        _watch(paths, interval)
    except EvotrainError as exc:
        raise _fail(exc) from None


def _watch(paths: CampaignPaths, interval: float) -> None:
    try:
        with Live(_status_view(paths), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(_status_view(paths), refresh=True)
    except KeyboardInterrupt:
        pass


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)],
    output: Annotated[Path | None, typer.Option(help="where to write the HTML (default: RUN/report.html)")] = None,
) -> None:
    """Write one self-contained HTML report: trajectory, dev vs external, calibration, candidates, policy, costs."""
    from evotrain.report import write_report  # matplotlib is only imported by the command that needs it

    try:
        path = write_report(run_dir, output)
    except EvotrainError as exc:
        raise _fail(exc) from None
    console.print(f"[green]report[/] {path}")


@app.command()
def audit(run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)]) -> None:
    """Re-verify hashes, manifests, evidence and the policy chain; exit non-zero on any mismatch."""
    try:
        problems = audit_campaign(run_dir)
    except EvotrainError as exc:
        raise _fail(exc) from None
    if problems:
        for problem in problems:
            err_console.print(f"[red]✗[/] {problem}", highlight=False)
        err_console.print(f"[bold red]audit failed[/]: {len(problems)} problem(s)")
        raise typer.Exit(code=1)
    console.print("[green]audit passed[/]: substrate, constitution, manifests, evidence and policy chain intact")


def _executor_for(run_dir: Path, name: str | None) -> StoppableExecutor:
    """The campaign's executor (`--executor`, else [executor] kind in campaign.toml), stopped by Ctrl-C/SIGTERM."""
    paths, config = open_campaign(run_dir)
    if name is not None and name not in EXECUTOR_KINDS:
        raise EvotrainError(f"--executor {name!r} is not an executor", fix=f"use one of: {', '.join(EXECUTOR_KINDS)}")
    return build_stoppable(name, config.executor, config_path=paths.config)


@app.command()
def cancel(run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)]) -> None:
    """Cancel the jobs a campaign's traces record as unfinished (its orchestrator is gone); `run` resumes them."""
    try:
        if not unfinished_jobs(run_dir):
            console.print("no unfinished jobs recorded")
            return
        for ref, how in cancel_unfinished_jobs(run_dir):
            console.print(f"  {ref.key}: {how}", highlight=False)
    except EvotrainError as exc:
        raise _fail(exc) from None


def main() -> None:
    sys.exit(app())


@app.command()
def check(
    substrate: Annotated[Path, typer.Argument(metavar="SUBSTRATE", help="folder holding evotrain.toml")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where the trial runs (new or empty) [default: a new temp folder]")
    ] = None,
    seed: Annotated[int, typer.Option(help="the trial's seed")] = 0,
) -> None:
    """Run the substrate's anchor trial once, outside any campaign (prepare, train, evaluate, predict), validate
    every report and the predictions file, and print what it found; exit 1 on a problem."""
    import tempfile

    from evotrain.campaign.check import check_substrate

    folder = directory or Path(tempfile.mkdtemp(prefix="evotrain-check-"))
    try:
        console.print(f"checking {substrate} in {folder} (the anchor trial, as round 1 would run it)", highlight=False)
        result = check_substrate(substrate, folder, seed=seed)
    except EvotrainError as exc:
        raise _fail(exc) from None
    console.print(_check_view(result))
    if not result.ok:
        raise typer.Exit(code=1)


def _check_view(result: Any) -> RenderableType:
    steps = Table(title="steps", title_justify="left")
    for col in ("step", "status", "wall s"):
        steps.add_column(col)
    for s in result.steps:
        status = s.status if s.status == "succeeded" else f"[red]{s.status}[/]"
        steps.add_row(s.step, status, f"{s.wall_s:.1f}")
    parts: list[RenderableType] = [steps]
    if result.checkpoints:
        domains = list(result.checkpoints[0].domains)
        reports = Table(title=f"evaluation reports (valid; metric {result.metric})", title_justify="left")
        for col in ("checkpoint", "overall", *(f"{d} (n)" for d in domains)):
            reports.add_column(col)
        for c in result.checkpoints:
            cells = [f"{c.domains[d].score:.4f} ({c.domains[d].n})" for d in domains]
            reports.add_row(c.checkpoint, f"{c.overall:.4f}", *cells)
        parts.append(reports)
    if result.selected is not None:
        parts.append(Text(f"selected {result.selected.checkpoint}: objective {result.selected.objective:.4f}"))
    if result.predictions is not None:
        parts.append(Text(f"predictions: {result.predictions} items in {result.predictions_file} (valid)"))
    if result.ok:
        parts.append(Text.from_markup(f"[green]check passed[/]: files in {escape(str(result.folder))}"))
    else:
        parts.append(Text(f"check failed: {len(result.problems)} problem(s)", style="bold red"))
        parts += [Text(f"  ✗ {problem}") for problem in result.problems]
        if result.stderr_tail:
            parts.append(Text("the failed step's stderr ends:"))
            parts += [Text(f"    {line}") for line in result.stderr_tail]
        parts.append(Text(f"logs and outputs: {result.folder}"))
    return Group(*parts)


@app.command(name="mlflow")
def mlflow_command(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN", help=RUN_HELP)],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking URI [default: \\[tracking] mlflow in campaign.toml, else sqlite:///RUN/mlflow.db]"
        ),
    ] = None,
) -> None:
    """Log a campaign to MLflow from its files (after the fact, or again: runs already logged are updated, never
    duplicated): a parent run, and a child run per candidate with its params, metrics, tags and manifest."""
    try:
        from evotrain.tracking.mlflow import log_campaign

        logged = log_campaign(run_dir, tracking_uri)
    except EvotrainError as exc:
        raise _fail(exc) from None
    console.print(
        f"[green]logged[/] {run_dir} to {escape(logged.uri)}: experiment {escape(logged.experiment)!r}, parent run "
        f"{logged.parent_run_id}; candidate runs: {logged.created} created, {logged.updated} updated, "
        f"{logged.unchanged} unchanged",
        highlight=False,
        soft_wrap=True,
    )

"""The offline mutator: the embedded default worker. No network, no model, no memory.

Given (campaign seed, round, candidate) it is deterministic. It changes one declared knob of its axis (sometimes
two), within the declared range: a float is multiplied or divided by a factor (in log space for a log knob) or
moved by a fraction of its range, an int steps up or down, a choice takes another value, a bool flips, and a
weights table raises or lowers one domain's weight. A move the dead-end registry blocks is never made. Files are
edited only through `evotrain.sandbox.knobs`.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

from evotrain.records.manifest import KnobChange, WorkerUsage
from evotrain.records.policy import DeadEnd
from evotrain.sandbox.knobs import read_knob, write_knob
from evotrain.substrate.spec import Knob
from evotrain.workers.protocol import WorkerRequest, WorkerResult

Direction = Literal["increase", "decrease", "set"]

SECOND_KNOB_PROBABILITY = 0.25
SIGNIFICANT_DIGITS = 3  # proposals are rounded so recipe diffs read "0.006", not "0.006000000000000001"
STEP_FRACTION = (0.1, 0.3)  # a float/int step is this fraction of the declared range (log range for log knobs)
MIN_LOG_FACTOR = 1.25
WEIGHT_FACTOR = (1.5, 2.5)


@dataclass(frozen=True)
class Move:
    """One concrete change the mutator could make."""

    knob_name: str
    knob: Knob
    direction: Direction
    key: str  # the dotted key changed (for weights: `<knob key>.<domain>`)
    old: Any
    new: Any
    write_value: Any  # what write_knob receives (the whole table for weights)
    how: str  # the step in words, e.g. "×2.0 in log space"


def round_sig(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    return float(f"{x:.{digits}g}")


def fmt(value: Any) -> str:
    """A value as the recipe spells it: 0.006, 'cosine', true."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.{SIGNIFICANT_DIGITS}g}"
    return repr(value) if isinstance(value, str) else str(value)


def _clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


def _direction(old: float, new: float) -> Direction:
    return "increase" if new > old else "decrease"


def _float_moves(name: str, knob: Knob, old: float, rng: random.Random) -> list[Move]:
    assert knob.low is not None and knob.high is not None
    base = _clip(old, knob.low, knob.high)
    if knob.log:
        step = max(rng.uniform(*STEP_FRACTION) * math.log(knob.high / knob.low), math.log(MIN_LOG_FACTOR))
        factor = math.exp(step)
        proposals = [(base * factor, f"×{factor:.2g} in log space"), (base / factor, f"÷{factor:.2g} in log space")]
    else:
        step = rng.uniform(*STEP_FRACTION) * (knob.high - knob.low)
        proposals = [(base + step, f"+{step:.3g}"), (base - step, f"−{step:.3g}")]
    proposals.append((_anywhere(knob.low, knob.high, knob.log, rng), "a draw across the declared range"))
    moves = []
    for raw, how in proposals:
        new = _clip(round_sig(raw), knob.low, knob.high)
        if new != old:
            moves.append(Move(name, knob, _direction(old, new), knob.key, old, new, new, how))
    return moves


def _anywhere(low: float, high: float, log: bool, rng: random.Random) -> float:
    """A value drawn uniformly over the declared range (in log space for a log knob): a step can only explore near
    the current value, and the best value may lie across the range."""
    if log and low > 0:
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)


def _int_moves(name: str, knob: Knob, old: int, rng: random.Random) -> list[Move]:
    assert knob.low is not None and knob.high is not None
    low, high = math.ceil(knob.low), math.floor(knob.high)
    base = int(_clip(old, low, high))
    if knob.log:
        proposals = [(base * 2, "×2"), (max(base // 2, 1), "÷2")]
    else:
        step = max(1, round(rng.uniform(*STEP_FRACTION) * (high - low)))
        proposals = [(base + step, f"+{step}"), (base - step, f"−{step}")]
    proposals.append((round(_anywhere(low, high, knob.log, rng)), "a draw across the declared range"))
    moves = []
    for raw, how in proposals:
        new = int(_clip(raw, low, high))
        if new != old:
            moves.append(Move(name, knob, _direction(old, new), knob.key, old, new, new, how))
    return moves


def _choice_moves(name: str, knob: Knob, old: Any) -> list[Move]:
    return [Move(name, knob, "set", knob.key, old, c, c, "another choice") for c in knob.choices or [] if c != old]


def _weight_moves(name: str, knob: Knob, old: dict[str, float], rng: random.Random) -> list[Move]:
    assert knob.low is not None and knob.high is not None
    moves = []
    for domain in sorted(old):
        weight = old[domain]
        factor = rng.uniform(*WEIGHT_FACTOR)
        base = _clip(weight, knob.low, knob.high)
        up = base * factor if base > 0 else knob.low + 0.25 * (knob.high - knob.low)
        for raw, how in ((up, f"×{factor:.2g}"), (base / factor, f"÷{factor:.2g}")):
            new = _clip(round_sig(raw), knob.low, knob.high)
            if new != weight:
                table = {**old, domain: new}
                key = f"{knob.key}.{domain}"
                moves.append(Move(name, knob, _direction(weight, new), key, weight, new, table, how))
    return moves


def candidate_moves(name: str, knob: Knob, old: Any, rng: random.Random) -> list[Move]:
    """Every move of one knob away from its current value, inside the declared range (never a no-op)."""
    if knob.type == "float":
        return _float_moves(name, knob, old, rng)
    if knob.type == "int":
        return _int_moves(name, knob, old, rng)
    if knob.type == "choice":
        return _choice_moves(name, knob, old)
    if knob.type == "bool":
        return [Move(name, knob, "set", knob.key, old, not old, not old, "flipped")]
    return _weight_moves(name, knob, old, rng)


def blocking_dead_end(axis: str, move: Move, dead_ends: list[DeadEnd]) -> DeadEnd | None:
    for dead_end in dead_ends:
        if dead_end.blocks(axis, move.knob_name, move.direction, move.new):
            return dead_end
    return None


def describe_move(move: Move, axis_name: str, axis_description: str) -> str:
    about = f"the {axis_name} axis" + (f" ({axis_description})" if axis_description else "")
    if move.knob.type == "weights":
        domain = move.key.rsplit(".", 1)[1]
        verb = "Raised" if move.direction == "increase" else "Lowered"
        more = "more" if move.direction == "increase" else "less"
        return (
            f"{verb} the {move.knob.key} weight of {domain} {fmt(move.old)} → {fmt(move.new)} ({move.how}) "
            f"to test whether {more} {domain} data improves the objective on {about}."
        )
    if move.knob.type == "bool":
        state = "on" if move.new else "off"
        return (
            f"Turned {move.key} {state} ({fmt(move.old)} → {fmt(move.new)}) to test whether the recipe does better "
            f"with it {state} on {about}."
        )
    if move.direction == "set":
        return (
            f"Set {move.key} {fmt(move.old)} → {fmt(move.new)} to test whether {fmt(move.new)} "
            f"does better than {fmt(move.old)} on {about}."
        )
    verb, size = ("Raised", "larger") if move.direction == "increase" else ("Lowered", "smaller")
    return (
        f"{verb} {move.key} {fmt(move.old)} → {fmt(move.new)} ({move.how}; declared range "
        f"{fmt(move.knob.low)}–{fmt(move.knob.high)}) to test whether a {size} value improves the objective "
        f"on {about}."
    )


class MutatorWorker:
    """The offline worker: deterministic knob and data-mix edits along one axis."""

    name = "mutator"

    def propose(self, request: WorkerRequest) -> WorkerResult:
        started = time.monotonic()
        rng = random.Random(request.seeds.mutator)  # handed out by the loop (records.ids.worker_seeds)
        knob_names = sorted(request.axis.knobs)
        rng.shuffle(knob_names)
        chosen: list[Move] = []
        blocked: list[tuple[Move, DeadEnd]] = []
        for knob_name in knob_names:
            knob = request.axis.knobs[knob_name]
            moves = candidate_moves(knob_name, knob, read_knob(request.sandbox, knob), rng)
            rng.shuffle(moves)
            move = self._first_open(request.axis_name, moves, request.dead_ends, blocked)
            if move is None:
                continue
            chosen.append(move)
            if len(chosen) == 2 or rng.random() >= SECOND_KNOB_PROBABILITY:
                break
        changes = [self._apply(request, move) for move in chosen]
        return WorkerResult(
            rationale=self._rationale(request, chosen, blocked),
            changes=changes,
            usage=WorkerUsage(turns=1, wall_s=time.monotonic() - started),
        )

    @staticmethod
    def _first_open(
        axis: str, moves: list[Move], dead_ends: list[DeadEnd], blocked: list[tuple[Move, DeadEnd]]
    ) -> Move | None:
        for move in moves:
            dead_end = blocking_dead_end(axis, move, dead_ends)
            if dead_end is None:
                return move
            blocked.append((move, dead_end))
        return None

    @staticmethod
    def _apply(request: WorkerRequest, move: Move) -> KnobChange:
        write_knob(request.sandbox, move.knob, move.write_value)
        return KnobChange(
            axis=request.axis_name,
            knob=move.knob_name,
            file=move.knob.file,
            key=move.key,
            old=move.old,
            new=move.new,
            direction=move.direction,
        )

    @staticmethod
    def _rationale(request: WorkerRequest, chosen: list[Move], blocked: list[tuple[Move, DeadEnd]]) -> str:
        avoided = ""
        if blocked:
            seen = sorted({f"{m.direction} {m.knob_name} (round {d.round}: {d.description})" for m, d in blocked})
            avoided = " Avoided dead ends: " + "; ".join(seen) + "."
        if not chosen:
            return (
                f"Made no change: every move of the {request.axis_name} axis within its declared range is blocked "
                f"by the dead-end registry.{avoided}"
            )
        sentences = [describe_move(m, request.axis_name, request.axis.description) for m in chosen]
        return " ".join(sentences) + avoided

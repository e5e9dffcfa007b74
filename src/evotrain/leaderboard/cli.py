"""`evotrain leaderboard serve|token|finalize|show`: the operator's side of the leaderboard."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from evotrain.errors import EvotrainError
from evotrain.fileio import atomic_write_text

leaderboard_app = typer.Typer(
    name="leaderboard",
    help="A leaderboard server holding hidden labels: serve it, issue campaign tokens, finalize, show.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[Path, typer.Option(help="the board's SQLite file (submissions, tokens, budgets)")]


def _fail(exc: EvotrainError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc.render()}", highlight=False)
    return typer.Exit(code=2)


def _require_db(db: Path) -> None:
    if not db.exists():
        raise EvotrainError(
            "no leaderboard database here", path=db, fix="pass the --db that `evotrain leaderboard serve` uses"
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen before the URL is announced, so a client that reads it never meets a refused connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then, and without
    # it every keep-alive response waits ~40 ms on Nagle's algorithm and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EvotrainError(
            f"cannot listen on {host}:{port}: {exc}", fix="pick another --port (0: any free one)"
        ) from None
    sock.listen(128)
    return sock


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_CHECK_S = 1.0


def stop_with_parent(parent_pid: int, server: Any) -> None:
    """Stop the server when the process that started it dies, however it dies (`kill -9` included): the kernel's
    parent-death signal on Linux, and a thread that sees the server re-parented (for the rest, and for a parent
    that died before the signal was asked for)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while not server.should_exit:
            if os.getppid() != parent_pid:
                server.should_exit = True
                return
            time.sleep(PARENT_CHECK_S)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@leaderboard_app.command()
def serve(
    answers: Annotated[Path, typer.Option(help="answers JSONL (see docs/leaderboard.md); never inside a campaign")],
    db: Annotated[Path | None, typer.Option(help="SQLite file; default: leaderboard.sqlite beside --answers")] = None,
    host: Annotated[str, typer.Option(help="address to bind; loopback unless you mean to expose it")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port; 0 picks a free one (see --url-file)")] = 8765,
    split: Annotated[str, typer.Option(help="which `split` of the answers file is scored (or `all`)")] = "external",
    public_fraction: Annotated[float, typer.Option(help="share of items without `part` made public")] = 0.5,
    per_domain: Annotated[bool, typer.Option(help="return per-domain public scores (Kaggle does not)")] = False,
    name: Annotated[str | None, typer.Option(help="the board's name (default: the answers file's stem)")] = None,
    max_body_mb: Annotated[float, typer.Option(help="largest request body accepted, in MiB")] = 32.0,
    url_file: Annotated[Path | None, typer.Option(help="write the server's URL here once it accepts requests")] = None,
    parent_pid: Annotated[
        int | None, typer.Option(help="stop when this process (the one that started the server) dies", hidden=True)
    ] = None,
) -> None:
    """Serve a board: score submissions against hidden labels, under each campaign's budget."""
    import uvicorn

    from evotrain.leaderboard.app import ServerSettings, create_app
    from evotrain.leaderboard.board import load_board
    from evotrain.leaderboard.store import LeaderboardStore

    try:
        board = load_board(answers, split=split, public_fraction=public_fraction, name=name)
        store = LeaderboardStore(db or answers.parent / "leaderboard.sqlite")
        store.bind_board(board.digest(), board.name)
        sock = bind_socket(host, port)
    except EvotrainError as exc:
        raise _fail(exc) from None
    if not _is_loopback(host):
        err_console.print(f"[yellow]warning:[/] listening on {host}, not loopback: anyone who can reach it can try")
    settings = ServerSettings(per_domain=per_domain, max_body_bytes=int(max_body_mb * 1024 * 1024))
    bound_port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound_port}"
    if url_file is not None:
        atomic_write_text(url_file, url + "\n")
    n_public = len(board.part("public"))
    console.print(
        f"leaderboard {board.name!r}: {len(board.items)} items ({n_public} public) at {url}  db {store.path}",
        highlight=False,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(board, store, settings), log_level="warning"))
    if parent_pid is not None:
        stop_with_parent(parent_pid, server)
    try:
        server.run(sockets=[sock])
    finally:
        store.close()


@leaderboard_app.command()
def token(
    db: DbOption,
    campaign: Annotated[str, typer.Option(help="campaign name (letters, digits, . _ -)")],
    max_total: Annotated[int | None, typer.Option(help="submissions over the campaign's life (no cap)")] = None,
    max_per_period: Annotated[int, typer.Option(help="submissions per rolling period; 0: no per-period cap")] = 5,
    period_s: Annotated[float, typer.Option(help="the rolling period, in seconds")] = 86400.0,
    rotate: Annotated[bool, typer.Option(help="replace an existing campaign's token (and budget)")] = False,
) -> None:
    """Create a campaign and print its token (only its hash is stored: keep it; give it to the campaign by env)."""
    from evotrain.leaderboard.store import Budget, LeaderboardStore

    try:
        if max_total is not None and max_total < 0:
            raise EvotrainError("--max-total must be 0 or more", fix="pass a count, or leave it out for no cap")
        if max_per_period < 0 or period_s <= 0:
            raise EvotrainError("--max-per-period must be 0 or more and --period-s positive", fix="correct them")
        budget = Budget(max_total=max_total, max_per_period=max_per_period or None, period_s=period_s)
        store = LeaderboardStore(db)
        try:
            issued = store.create_campaign(campaign, budget, rotate=rotate)
        finally:
            store.close()
    except EvotrainError as exc:
        raise _fail(exc) from None
    sys.stdout.write(issued + "\n")


@leaderboard_app.command()
def finalize(db: DbOption) -> None:
    """Close the board: no more submissions; private scores become visible and rank the leaderboard."""
    from evotrain.leaderboard.store import LeaderboardStore

    try:
        _require_db(db)
        store = LeaderboardStore(db)
        try:
            at = store.finalize()
        finally:
            store.close()
    except EvotrainError as exc:
        raise _fail(exc) from None
    console.print(f"finalized at {at:.0f} (epoch s); `evotrain leaderboard show --db {db}` for the private ranking")


@leaderboard_app.command()
def show(db: DbOption) -> None:
    """The operator's view: every campaign, its best public submission and that submission's private score."""
    from evotrain.leaderboard.app import leaderboard_entries
    from evotrain.leaderboard.store import LeaderboardStore

    try:
        _require_db(db)
        store = LeaderboardStore(db)
        try:
            finalized = store.finalized_at() is not None
            entries = leaderboard_entries(store, finalized=True, viewer=None)
            usage = {c.name: store.usage(c) for c in store.campaigns()}
        finally:
            store.close()
    except EvotrainError as exc:
        raise _fail(exc) from None
    table = Table(title=f"leaderboard ({'finalized' if finalized else 'open'}; ranked by private score)")
    for col in ("rank", "campaign", "submissions", "best public", "its private", "budget used"):
        table.add_column(col)
    for e in entries:
        u = usage[e.campaign]
        table.add_row(
            str(e.rank),
            e.campaign,
            str(e.submissions),
            _fmt(e.best_public_score),
            _fmt(e.private_score),
            f"{u.used_total}/{u.max_total if u.max_total is not None else '∞'} total, "
            f"{u.used_in_period}/{u.max_per_period if u.max_per_period is not None else '∞'} per period",
        )
    console.print(table)


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "-"

"""``python -m connectx_gym.play AGENT --web``: play an agent in the browser, with its thinking visible.

One game lives in a :class:`GameSession`; a standard-library HTTP server serves the page
(``page.html``: plain HTML, CSS and JavaScript, no build step) and a small JSON API:

- ``GET /api/state``: the board, whose turn it is, the result, and what the agent thought before
  its last move: its move probabilities and value (a network agent) and its search (``mcts:``);
- ``POST /api/new`` ``{"seat": "first" | "second"}``: a new game (the agent moves at once when it
  moves first);
- ``POST /api/move`` ``{"column": c, "ply": n}``: your move, then the agent's reply. ``ply`` is the
  number of moves the page has seen: a move sent from a stale page is refused;
- ``POST /api/undo``: take back your last move and the agent's reply.

Bad requests (an illegal column, a move out of turn, a malformed body) are answered with HTTP 400
or 409 and ``{"error": ...}``, which the page shows; nothing a request sends stops the server. It
binds to 127.0.0.1 unless told another host.

The page answers only itself (:class:`Access`), as Jupyter's local server does: a request whose
``Host`` is not an address the server serves on is refused with 403 (DNS rebinding); a state
change must be ``Content-Type: application/json`` and, when the browser names an ``Origin``, come
from the page's own origin (so another site open in the same browser cannot post a move); and
served on another host than the loopback address, every API call must carry the random token of
the URL the console printed (``?token=...`` or ``Authorization: token ...``). A negative or
malformed ``Content-Length`` is a 400, a body shorter than announced or a client that sends nothing
is dropped after ``REQUEST_TIMEOUT`` seconds; each connection has its own thread, so a slow client holds
up no one else.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from connectx_gym.agents.checkpoint import board_text, network_view
from connectx_gym.errors import UserError
from connectx_gym.rules.bitboard import EMPTY, FIRST_MARK, Position, geometry

SEATS = ("first", "second")
#: the largest request body read (a move is a few bytes)
MAX_BODY = 4096
LOOPBACK = "127.0.0.1"
#: the names of this machine's loopback address that a browser on it may put in ``Host``
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: addresses that mean every interface: the browser's ``Host`` can then be any of this machine's names
WILDCARDS = ("0.0.0.0", "::", "")
#: seconds a connection may take to send its request (a silent or slow client is then dropped)
REQUEST_TIMEOUT = 10.0


class RequestError(Exception):
    """A request the game cannot take; its message is shown on the page."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status


def search_view(agent: Any) -> dict[str, Any] | None:
    """What an ``mcts:`` agent's last search found, as JSON: simulations, visits, root value or proof."""
    result = getattr(agent, "last_result", None)
    if result is None:
        return None
    return {
        "simulations": int(result.simulations),
        "kept": int(getattr(agent, "last_kept", 0)),
        "visits": [int(n) for n in result.visits],
        "root_value": None if result.proven is not None else float(result.search_value),
        "proven": result.proven,
        "plies": None if result.proven is None else int(result.plies),
    }


class GameSession:
    """One game between you and ``agent`` on ``board``; every method is called under one lock.

    :param agent: any agent (``act(position, rng) -> column``)
    :param label: the agent's name on the page
    :param board: ``{"rows", "columns", "inarow"}``
    :param seed: the agent's random choices in game ``g`` come from ``seed + g``
    """

    def __init__(self, agent: Any, label: str, board: dict[str, int], seed: int = 0, human_first: bool = True) -> None:
        self.agent, self.label, self.board, self.seed = agent, label, dict(board), seed
        self.lock = threading.Lock()
        self.games = 0
        self.new_game(human_first)

    # ------------------------------------------------------------------ actions
    def new_game(self, human_first: bool) -> None:
        self.position = Position(geometry(self.board["rows"], self.board["columns"], self.board["inarow"]))
        self.rng = np.random.default_rng(self.seed + self.games)
        self.games += 1
        self.you = FIRST_MARK if human_first else 3 - FIRST_MARK
        self.moves: list[int] = []
        self.forfeit: str | None = None
        self.analysis: dict[str, Any] | None = None
        self.last_seconds: float | None = None
        if not human_first:
            self._agent_moves()

    def move(self, column: Any, ply: Any) -> None:
        """Your ``column``, then the agent's reply; ``ply`` must be the number of moves played so far."""
        if isinstance(column, bool) or not isinstance(column, int):
            raise RequestError(f"'column' must be an integer, got {column!r}")
        if ply is not None and ply != len(self.moves):
            raise RequestError(
                f"move out of turn: the page saw {ply!r} moves, the game has {len(self.moves)}; reload the page",
                HTTPStatus.CONFLICT,
            )
        if self.finished:
            raise RequestError("the game is over: start a new game", HTTPStatus.CONFLICT)
        if self.position.to_move != self.you:
            raise RequestError("move out of turn: it is the agent's move", HTTPStatus.CONFLICT)
        columns = self.board["columns"]
        if not 0 <= column < columns:
            raise RequestError(f"column {column} is off the board: the columns are 0 to {columns - 1}")
        if not self.position.is_legal(column):
            raise RequestError(f"column {column} is full")
        self._play(column)
        if not self.finished:
            self._agent_moves()

    def undo(self) -> None:
        """Take back your last move and the agent's reply to it (or the reply that ended the game)."""
        mine = [i for i, _ in enumerate(self.moves) if self._mover(i) == self.you]
        if not mine:
            raise RequestError("nothing to undo: you have not moved yet")
        keep = self.moves[: mine[-1]]
        self.position = Position(self.position.geometry)
        for column in keep:
            self.position.play(column)
        self.moves, self.forfeit, self.analysis, self.last_seconds = keep, None, None, None

    # ------------------------------------------------------------------ internals
    def _mover(self, ply: int) -> int:
        return FIRST_MARK if ply % 2 == 0 else 3 - FIRST_MARK

    def _play(self, column: int) -> None:
        self.position.play(column)
        self.moves.append(column)

    def _agent_moves(self) -> None:
        position = self.position
        view = network_view(self.agent, position)
        started = time.perf_counter()
        try:
            column = self.agent.act(position, self.rng)
        except Exception as error:  # a failing agent forfeits, as on Kaggle
            self.forfeit = f"{self.label} raised {type(error).__name__}: {error}"
            return
        self.last_seconds = time.perf_counter() - started
        if not isinstance(column, (int, np.integer)) or not position.is_legal(int(column)):
            self.forfeit = f"{self.label} chose the illegal column {column!r}"
            return
        self.analysis = {
            "ply": len(self.moves),
            "column": int(column),
            "probabilities": None if view is None else view[0],
            "value": None if view is None else view[1],
            "search": search_view(self.agent),
        }
        self._play(int(column))

    # ------------------------------------------------------------------ reading
    @property
    def finished(self) -> bool:
        return self.forfeit is not None or self.position.winner is not None

    @property
    def result(self) -> str | None:
        """``win``, ``loss`` or ``draw`` from your side, ``None`` while the game goes on."""
        if self.forfeit is not None:
            return "win"
        winner = self.position.winner
        if winner is None:
            return None
        return "draw" if winner == EMPTY else ("win" if winner == self.you else "loss")

    def state(self) -> dict[str, Any]:
        """The game as the page draws it."""
        rows, columns = self.board["rows"], self.board["columns"]
        flat = self.position.to_kaggle()
        result = self.result
        return {
            "agent": self.label,
            "board": dict(self.board),
            "board_text": board_text(self.board),
            "cells": [flat[r * columns : (r + 1) * columns] for r in range(rows)],
            "moves": list(self.moves),
            "you": self.you,
            "seat": "first" if self.you == FIRST_MARK else "second",
            "to_move": self.position.to_move,
            "your_turn": result is None and self.position.to_move == self.you,
            "legal": [] if result is not None else self.position.legal_moves(),
            "result": result,
            "forfeit": self.forfeit,
            "analysis": self.analysis,
            "agent_seconds": self.last_seconds,
        }


@dataclass(frozen=True)
class Access:
    """Who the server answers.

    :param hosts: the ``Host`` header values it serves (``name:port``); empty: any (a wildcard address,
        where the token guards the API instead)
    :param token: the token every API call must carry; None on the loopback address
    """

    hosts: frozenset[str]
    token: str | None

    @classmethod
    def serving(cls, host: str, port: int) -> Access:
        """The access of a server on ``host:port``: loopback names only and no token on 127.0.0.1; on
        another host, that host too and a fresh random token."""
        if host in WILDCARDS:
            return cls(frozenset(), secrets.token_urlsafe(24))
        shown = (f"[{host}]" if ":" in host and not host.startswith("[") else host).lower()
        names = {*LOOPBACK_NAMES, shown}
        hosts = {f"{name}:{port}" for name in names} | ({*names} if port == 80 else set())
        return cls(frozenset(hosts), None if host == LOOPBACK else secrets.token_urlsafe(24))

    def refusal(self, method: str, path: str, headers: Any) -> str | None:
        """Why a request is refused with 403, or None when it may go on.

        :param headers: the request's headers (``get(name)``)
        """
        host = (headers.get("Host") or "").strip().lower()
        if self.hosts and host not in self.hosts:
            return f"this server does not answer for the host {host!r}"
        api = path.startswith("/api/")
        if api and self.token is not None and not self._has_token(path, headers):
            return "this page needs the token of the URL that play --web printed (?token=...)"
        if method != "GET":
            content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                return f"a state change must be sent as application/json, got {content_type or 'no type'!r}"
            origin = headers.get("Origin")
            if origin is not None and origin.strip().lower() != f"http://{host}":
                return f"requests from {origin!r} are not this page's own"
        return None

    def _has_token(self, path: str, headers: Any) -> bool:
        assert self.token is not None
        given = parse_qs(urlsplit(path).query).get("token", [""])[0]
        authorization = (headers.get("Authorization") or "").strip()
        if authorization.lower().startswith("token "):
            given = authorization[6:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())


def page() -> bytes:
    return resources.files("connectx_gym.web").joinpath("page.html").read_bytes()


def read_json_body(headers: Any, rfile: Any) -> dict[str, Any]:
    """A request's JSON object body, read by its ``Content-Length`` (none: ``{}``).

    :raises RequestError: a negative, non-numeric or too large length, a body shorter than announced
        (the client closed its side), or a body that is not a JSON object
    :raises TimeoutError: the body did not come within the connection's timeout
    """
    announced = headers.get("Content-Length") or "0"
    try:
        length = int(announced)
    except ValueError:
        length = -1
    if length < 0:
        raise RequestError(f"malformed request: bad Content-Length {announced!r}")
    if length > MAX_BODY:
        raise RequestError(f"request body too large ({length} bytes; at most {MAX_BODY})")
    raw = rfile.read(length) if length else b"{}"
    if len(raw) < length:
        raise RequestError(f"malformed request: the body has {len(raw)} of {length} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("malformed request: the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise RequestError("malformed request: the body must be a JSON object")
    return body


def make_handler(
    session: GameSession, access: Access, request_timeout: float = REQUEST_TIMEOUT
) -> type[BaseHTTPRequestHandler]:
    """The request handler class bound to ``session``, answering what ``access`` allows.

    :param request_timeout: seconds a connection may take to send its request line, headers or body
    """

    class Handler(BaseHTTPRequestHandler):
        server_version = "connectx_gym"
        timeout = request_timeout  # the socket's: a silent or slow client is dropped, not waited for

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass  # quiet: the terminal shows what matters

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: HTTPStatus, document: dict[str, Any]) -> None:
            self._send(status, json.dumps(document).encode(), "application/json")

        def _refused(self) -> bool:
            """Answer 403 (and say so) if ``access`` refuses this request."""
            reason = access.refusal(self.command, self.path, self.headers)
            if reason is not None:
                self.close_connection = True
                self._json(HTTPStatus.FORBIDDEN, {"error": reason})
            return reason is not None

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self._refused():
                return
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8")
            elif path == "/api/state":
                with session.lock:
                    self._json(HTTPStatus.OK, session.state())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            if self._refused():
                return
            path = self.path.split("?", 1)[0]
            try:
                body = read_json_body(self.headers, self.rfile)
                with session.lock:
                    if path == "/api/new":
                        seat = body.get("seat", "first")
                        if seat not in SEATS:
                            raise RequestError(f"'seat' must be 'first' or 'second', got {seat!r}")
                        session.new_game(seat == "first")
                    elif path == "/api/move":
                        if "column" not in body:
                            raise RequestError("a move needs a 'column'")
                        session.move(body["column"], body.get("ply"))
                    elif path == "/api/undo":
                        session.undo()
                    else:
                        raise RequestError(f"no such action: {path}", HTTPStatus.NOT_FOUND)
                    state = session.state()
            except RequestError as error:
                self.close_connection = True  # after a framing error the rest of the stream means nothing
                self._json(error.status, {"error": str(error)})
                return
            except TimeoutError:
                self.close_connection = True  # the body never came: drop the connection
                return
            except Exception as error:  # never let one request stop the server
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"})
                return
            self._json(HTTPStatus.OK, state)

    return Handler


class GameServer(ThreadingHTTPServer):
    """The HTTP server of one :class:`GameSession`; :attr:`access` says whom it answers."""

    daemon_threads = True
    access: Access

    @property
    def url(self) -> str:
        """The page's address to open, with its token when it needs one."""
        host = self.server_address[0]
        shown = "localhost" if host in (LOOPBACK, *WILDCARDS) else host
        token = "" if self.access.token is None else f"?token={self.access.token}"
        return f"http://{shown}:{self.server_port}/{token}"


def make_server(
    session: GameSession, host: str = LOOPBACK, port: int = 8000, timeout: float = REQUEST_TIMEOUT
) -> GameServer:
    """The HTTP server of ``session`` on ``host:port`` (port 0: any free port), not yet serving.

    :param timeout: seconds a connection may take to send a request before it is dropped
    :raises UserError: if the address cannot be bound (in use, or not this machine's)
    """
    try:
        server = GameServer((host, port), BaseHTTPRequestHandler, bind_and_activate=True)
    except OSError as error:
        raise UserError(f"cannot serve on {host}:{port} ({error.strerror or error}); pick another --port") from None
    server.access = Access.serving(host, server.server_port)
    server.RequestHandlerClass = make_handler(session, server.access, timeout)
    return server


def serve(session: GameSession, host: str = LOOPBACK, port: int = 8000, say=print) -> None:
    """Serve ``session`` until Ctrl-C (then it says ``stopped`` and returns)."""
    server = make_server(session, host, port)
    say(f"playing {session.label} on a {board_text(session.board)} board at {server.url}")
    if host != LOOPBACK:
        say(
            f"warning: serving on {host}: anyone who can reach it and has this URL (its token) can play and drive "
            "the agent"
        )
    say("Ctrl-C stops the server")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()

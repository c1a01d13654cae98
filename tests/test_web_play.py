"""``play --web``: the game session, its JSON API (bad requests never stop the server), and the page in a
real headless Chromium (skipped, naming the install command, where none is installed)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from connectx_gym.agents.specs import make_agent
from connectx_gym.play import main as play_main
from connectx_gym.rules.bitboard import Position, geometry
from connectx_gym.rules.planes import encode_position
from connectx_gym.web.browser import headless_chromium, missing_reason
from connectx_gym.web.server import GameSession, make_server

BOARD = {"rows": 6, "columns": 7, "inarow": 4}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from helpers import tiny_checkpoint

    return str(tiny_checkpoint(tmp_path_factory.mktemp("web") / "tiny.zip", BOARD, steps=64))


class Server:
    """A session's server on a free loopback port, serving from a thread."""

    def __init__(self, session: GameSession, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.session, self.host = session, host
        self.httpd = make_server(session, host, port=0, timeout=timeout)
        self.port = self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/" if self.host == "127.0.0.1" else self.httpd.url

    def request(self, method: str, path: str, body: bytes | str | None = None, headers=None):
        """One request as the page sends it (a POST as JSON), with ``headers`` added or replacing those."""
        sent = {"Content-Type": "application/json"} if method == "POST" else {}
        sent.update(headers or {})
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        raw = response.read()
        document = json.loads(raw or b"{}") if response.getheader("Content-Type") == "application/json" else raw
        connection.close()
        return response.status, document

    def post(self, path: str, document) -> tuple[int, dict]:
        return self.request("POST", path, json.dumps(document))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served():
    servers = []

    def start(agent, human_first=True, board=BOARD, label="agent", host="127.0.0.1", timeout=10.0):
        server = Server(GameSession(agent, label, board, seed=0, human_first=human_first), host, timeout)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def leftmost():
    return make_agent("alphabeta:1")  # deterministic and quick


# ---------------------------------------------------------------------------------------------- the API
def test_a_move_gets_the_agents_reply_and_the_state_follows(served, checkpoint):
    from connectx_gym.evaluation.plan import build_agent

    server = served(build_agent(f"mcts:{checkpoint}:16").agent)
    status, state = server.request("GET", "/api/state")
    assert status == 200 and state["moves"] == [] and state["your_turn"] and state["analysis"] is None
    status, state = server.post("/api/move", {"column": 3, "ply": 0})
    assert status == 200 and state["moves"][0] == 3 and len(state["moves"]) == 2
    analysis = state["analysis"]
    assert analysis["ply"] == 1 and analysis["column"] == state["moves"][1]
    assert abs(sum(analysis["probabilities"]) - 1) < 1e-6 and -1.5 < analysis["value"] < 1.5
    assert sum(analysis["search"]["visits"]) >= 1 and analysis["search"]["simulations"] == 16
    assert state["cells"][5][3] == 1 and sum(map(sum, state["cells"])) == 1 + 2


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"column": 7, "ply": 0}, 400, "column 7 is off the board: the columns are 0 to 6"),
        ({"column": -1, "ply": 0}, 400, "column -1 is off the board"),
        ({"column": "3", "ply": 0}, 400, "'column' must be an integer, got '3'"),
        ({"column": True, "ply": 0}, 400, "'column' must be an integer"),
        ({"ply": 0}, 400, "a move needs a 'column'"),
        ({"column": 3, "ply": 5}, 409, "move out of turn: the page saw 5 moves, the game has 0"),
        ([3], 400, "the body must be a JSON object"),
    ],
)
def test_bad_moves_get_an_error_and_change_nothing(served, body, status, words):
    server = served(leftmost())
    got_status, document = server.post("/api/move", body)
    assert got_status == status and words in document["error"]
    assert server.request("GET", "/api/state")[1]["moves"] == []


def test_malformed_requests_never_stop_the_server(served):
    server = served(leftmost())
    assert server.request("POST", "/api/move", b"\xff\xfe not json")[0] == 400
    assert server.request("POST", "/api/move", b"{", {"Content-Length": "1"})[0] == 400
    assert server.request("POST", "/api/move", b"x" * 5000)[1]["error"].startswith("request body too large")
    assert server.request("POST", "/api/nothing", b"{}") == (404, {"error": "no such action: /api/nothing"})
    assert server.request("GET", "/secret")[0] == 404
    assert server.post("/api/new", {"seat": "middle"}) == (
        400,
        {"error": "'seat' must be 'first' or 'second', got 'middle'"},
    )
    # a raw socket sending garbage
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"\x00\x01 garbage\r\n\r\n")
        raw.recv(1024)
    status, state = server.post("/api/move", {"column": 0, "ply": 0})
    assert status == 200 and state["moves"][0] == 0


def test_a_full_column_out_of_turn_and_a_finished_game(served):
    board = {"rows": 2, "columns": 3, "inarow": 2}
    server = served(make_agent("alphabeta:2"), board=board)
    status, state = server.post("/api/move", {"column": 0, "ply": 0})
    assert status == 200
    column = state["moves"][1]
    if column == 0:  # the agent filled column 0
        assert server.post("/api/move", {"column": 0, "ply": 2}) == (400, {"error": "column 0 is full"})
    while state["result"] is None:
        status, state = server.post("/api/move", {"column": state["legal"][0], "ply": len(state["moves"])})
        assert status == 200
    assert state["result"] in ("win", "loss", "draw") and state["legal"] == [] and not state["your_turn"]
    status, document = server.post("/api/move", {"column": 0, "ply": len(state["moves"])})
    assert status == 409 and "the game is over" in document["error"]


def test_new_game_as_second_player_and_undo(served):
    server = served(leftmost())
    status, state = server.post("/api/new", {"seat": "second"})
    assert status == 200 and state["seat"] == "second" and len(state["moves"]) == 1 and state["your_turn"]
    assert server.post("/api/undo", {}) == (400, {"error": "nothing to undo: you have not moved yet"})
    first = state["moves"]
    status, state = server.post("/api/move", {"column": 6, "ply": 1})
    assert len(state["moves"]) == 3
    status, state = server.post("/api/undo", {})
    assert status == 200 and state["moves"] == first and state["your_turn"] and state["analysis"] is None


def test_a_failing_agent_forfeits(served):
    class Broken:
        def act(self, position, rng):
            raise RuntimeError("boom")

    server = served(Broken())
    status, state = server.post("/api/move", {"column": 3, "ply": 0})
    assert status == 200 and state["result"] == "win" and "raised RuntimeError: boom" in state["forfeit"]


def test_the_command_serves_on_loopback_and_refuses_bad_options(tmp_path, capsys):
    assert play_main(["random", "--port", "1234"]) == 2
    assert "--host and --port are for --web" in capsys.readouterr().err
    assert play_main(["random", "--web", "--port", "70000"]) == 2
    assert "--port must be 0..65535, got 70000" in capsys.readouterr().err
    child = subprocess.Popen(
        [sys.executable, "-m", "connectx_gym.play", "random", "--web", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert "on a 6x7 with 4 in a row board at http://localhost:" in line
        port = int(line.rsplit(":", 1)[1].strip("/\n"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        assert b"<title>connectx_gym: play</title>" in connection.getresponse().read()
    finally:
        child.terminate()
        child.wait(timeout=30)


def test_a_taken_port_is_one_line(served):
    server = served(leftmost())
    with pytest.raises(Exception, match=f"cannot serve on 127.0.0.1:{server.port}"):
        make_server(server.session, port=server.port)


# ---------------------------------------------------------------------------------------------- who it answers
MOVE = json.dumps({"column": 3, "ply": 0})


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1:1", "localhost.evil.example", ""])
def test_a_foreign_host_is_refused(served, host):
    """DNS rebinding: a foreign page whose name now points at 127.0.0.1 sends its own name as Host."""
    server = served(leftmost())
    for method, path, body in (("GET", "/api/state", None), ("GET", "/", None), ("POST", "/api/move", MOVE)):
        status, document = server.request(method, path, body, {"Host": host})
        assert status == 403 and "does not answer for the host" in document["error"]
    assert server.session.moves == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
def test_every_loopback_name_with_the_port_is_served(served, name):
    server = served(leftmost())
    assert server.request("GET", "/api/state", headers={"Host": f"{name}:{server.port}"})[0] == 200


@pytest.mark.parametrize(
    "headers, words",
    [
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, "application/json, got 'text/plain'"),
        ({"Content-Type": "text/plain"}, "application/json, got 'text/plain'"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/json"),
        ({"Content-Type": ""}, "got 'no type'"),
        ({"Origin": "http://evil.example"}, "requests from 'http://evil.example' are not this page's own"),
        ({"Origin": "null"}, "are not this page's own"),
        ({"Origin": "https://127.0.0.1"}, "are not this page's own"),
    ],
)
def test_a_cross_site_state_change_is_refused_and_changes_nothing(served, headers, words):
    """What a page on another site can send without a CORS preflight (a text/plain or form POST), and a
    JSON POST naming a foreign Origin."""
    server = served(leftmost())
    for path in ("/api/move", "/api/new", "/api/undo"):
        status, document = server.request("POST", path, MOVE, headers)
        assert status == 403 and words in document["error"]
    assert server.session.moves == [] and server.session.games == 1


def test_the_pages_own_origin_and_a_charset_may_change_state(served):
    server = served(leftmost())
    own = {"Origin": f"http://127.0.0.1:{server.port}", "Content-Type": "application/json; charset=utf-8"}
    status, state = server.request("POST", "/api/move", MOVE, own)
    assert status == 200 and state["moves"][0] == 3


def test_served_on_another_host_the_api_needs_the_token(served):
    server = served(leftmost(), host="127.0.0.2")
    token = server.httpd.access.token
    assert server.url == f"http://127.0.0.2:{server.port}/?token={token}" and len(token) >= 32
    assert server.request("GET", "/")[0] == 200  # the page itself is no secret
    for method, path, body in (("GET", "/api/state", None), ("POST", "/api/move", MOVE)):
        for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": f"Bearer {token}"}):
            status, document = server.request(method, path, body, headers)
            assert status == 403 and "needs the token" in document["error"]
        assert server.request(method, f"{path}?token=x{token}", body)[0] == 403
    assert server.session.moves == []
    assert server.request("GET", f"/api/state?token={token}")[0] == 200
    status, state = server.request("POST", "/api/move", MOVE, {"Authorization": f"token {token}"})
    assert status == 200 and state["moves"][0] == 3
    # its own host and the loopback names, each with the port
    assert server.request("GET", f"/api/state?token={token}", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert server.request("GET", f"/api/state?token={token}", headers={"Host": "127.0.0.3"})[0] == 403


@pytest.mark.parametrize("length", ["-1", "-99999", "ten", "1e3", "0x10"])
def test_a_bad_content_length_is_a_400(served, length):
    server = served(leftmost())
    status, document = server.request("POST", "/api/move", MOVE, {"Content-Length": length})
    assert status == 400 and "bad Content-Length" in document["error"]
    assert server.request("GET", "/api/state")[1]["moves"] == []


def _raw(server, request: bytes):
    import socket

    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    raw.sendall(request)
    return raw


def _post_head(server, length: int) -> bytes:
    return (
        f"POST /api/move HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_shorter_than_announced_is_a_400_or_dropped(served):
    import socket

    server = served(leftmost(), timeout=0.5)
    # the client says it has finished sending: 400
    with _raw(server, _post_head(server, 100) + b'{"column": 3') as raw:
        raw.shutdown(socket.SHUT_WR)
        answer = b"".join(iter(lambda: raw.recv(4096), b""))
    assert answer.startswith(b"HTTP/1.0 400") and b"the body has 12 of 100 bytes" in answer
    # the client keeps the connection open and sends no more: dropped after the timeout, no answer
    with _raw(server, _post_head(server, 100) + b'{"column": 3') as raw:
        started = time.monotonic()
        assert raw.recv(4096) == b""
        assert time.monotonic() - started < 20
    assert server.request("GET", "/api/state")[1]["moves"] == []


def test_a_silent_client_holds_up_no_one_and_is_dropped(served):
    server = served(leftmost(), timeout=1.0)
    silent = [_raw(server, b"") for _ in range(3)] + [_raw(server, b"GET /api/sta")]
    try:
        started = time.monotonic()
        status, state = server.post("/api/move", {"column": 3, "ply": 0})
        assert status == 200 and state["moves"][0] == 3
        assert time.monotonic() - started < 0.9  # answered while the silent ones still hold their connections
        for raw in silent:
            assert raw.recv(4096) == b""  # closed by the server after its timeout
    finally:
        for raw in silent:
            raw.close()


def test_the_command_with_host_prints_a_token_url_and_the_api_wants_it(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-m", "connectx_gym.play", "random", "--web", "--host", "127.0.0.2", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = child.stdout.readline().rsplit(" at ", 1)[1].strip()
        assert url.startswith("http://127.0.0.2:") and "/?token=" in url
        assert "has this URL (its token)" in child.stdout.readline()
        port, token = int(url.split(":")[2].split("/")[0]), url.split("token=")[1]
        connection = http.client.HTTPConnection("127.0.0.2", port, timeout=30)
        connection.request("GET", "/api/state")
        assert connection.getresponse().status == 403
        connection.request("GET", f"/api/state?token={token}")
        assert connection.getresponse().status == 200
    finally:
        child.terminate()
        child.wait(timeout=30)


# ---------------------------------------------------------------------------------------------- the page
needs_browser = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


def wait_until_idle(driver, ply=None, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d):
        body = d.find_element("tag name", "body")
        if body.get_attribute("data-busy") or body.get_attribute("data-ply") is None:
            return False
        return ply is None or int(body.get_attribute("data-ply")) >= ply

    WebDriverWait(driver, timeout, poll_frequency=0.02).until(ready)
    return int(driver.find_element("tag name", "body").get_attribute("data-ply"))


def expected_probabilities(policy, moves):
    position = Position(geometry(6, 7, 4))
    for column in moves:
        position.play(column)
    logits = policy.logits(encode_position(position)[None])[0].astype(np.float64)
    legal = position.legal_moves()
    weights = np.exp(logits[legal] - logits[legal].max())
    probabilities = np.full(7, np.nan)
    probabilities[legal] = weights / weights.sum()
    return probabilities


@needs_browser
def test_a_full_game_by_clicks_with_the_agents_thinking(browser, served, checkpoint, tmp_path):
    from connectx_gym.evaluation.plan import build_agent

    agent = build_agent(f"mcts:{checkpoint}:16").agent
    server = served(agent, label="mcts:tiny.zip:16")
    browser.get(server.url)
    ply = wait_until_idle(browser)
    assert ply == 0 and "your move" in browser.find_element("id", "status").text
    checked_full = False
    while not browser.find_element("id", "status").get_attribute("data-result"):
        state = server.session.state()
        full = [c for c in range(7) if c not in state["legal"]]
        target = full[0] if full and not checked_full else state["legal"][0]
        browser.find_element("css selector", f".column[data-col='{target}']").click()
        if target in full:  # a click on a full column is refused on the page
            checked_full = True
            wait_until_idle(browser)
            assert browser.find_element("id", "error").text == f"column {target} is full"
            continue
        ply = wait_until_idle(browser, ply + 1)
        state = server.session.state()
        if state["analysis"] is None:
            continue
        # the bars are the network's probabilities before the agent's last move
        expected = expected_probabilities(agent.policy, state["moves"][: state["analysis"]["ply"]])
        bars = browser.find_elements("css selector", ".bar")
        shown = [float(b.get_attribute("data-p")) if b.get_attribute("data-p") else np.nan for b in bars]
        np.testing.assert_allclose(shown, expected, atol=1e-6)
        heights = [int(b.value_of_css_property("height").rstrip("px").split(".")[0]) for b in bars]
        assert heights[int(np.nanargmax(expected))] == max(heights) > 0
        visits = [v.text for v in browser.find_elements("css selector", ".visits")]
        assert visits == [f"{n}×" if n else "" for n in state["analysis"]["search"]["visits"]]
        search = state["analysis"]["search"]
        fresh = search["simulations"] - search["kept"]
        words = (
            f"proven {search['proven']} for it in {search['plies']} plies"
            if search["proven"]
            else "root value " + f"{search['root_value']:+.2f}".replace("-", "−")
        )
        assert browser.find_element("id", "search").text.startswith(f"{fresh} simulation")
        assert browser.find_element("id", "search").text.endswith(words)
        assert browser.find_element("id", "value").text[0] in "+−"
        if ply == 6:
            shot = tmp_path / "mid-game.png"
            assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
            assert shot.stat().st_size > 10_000
    state = server.session.state()
    assert state["result"] in ("win", "loss", "draw")
    stones = sum(
        1 for cell in browser.find_elements("css selector", ".cell") if cell.get_attribute("data-stone") != "0"
    )
    assert stones == len(state["moves"])
    result_text = browser.find_element("id", "status").text
    assert {"win": "You win!", "loss": "wins", "draw": "Draw"}[state["result"]] in result_text


@needs_browser
def test_new_game_seat_and_undo_on_the_page(browser, served):
    from selenium.webdriver.support.ui import Select

    server = served(leftmost())
    browser.get(server.url)
    wait_until_idle(browser)
    Select(browser.find_element("id", "seat")).select_by_value("second")
    browser.find_element("id", "new").click()
    assert wait_until_idle(browser, 1) == 1
    assert browser.find_element("id", "undo").get_attribute("disabled") == "true"
    browser.find_element("css selector", ".column[data-col='0']").click()
    assert wait_until_idle(browser, 3) == 3
    browser.find_element("id", "undo").click()
    time.sleep(0.2)
    assert wait_until_idle(browser) == 1 and len(server.session.moves) == 1
    assert browser.find_element("id", "error").text == ""


@needs_browser
def test_the_page_with_its_token_plays_on_another_host(browser, served):
    server = served(leftmost(), host="127.0.0.2")
    browser.get(server.url)
    assert wait_until_idle(browser) == 0
    browser.find_element("css selector", ".column[data-col='3']").click()
    assert wait_until_idle(browser, 2) == 2 and server.session.moves[0] == 3
    assert browser.find_element("id", "error").text == ""

"""``play --web`` in a real headless Chromium: how long the page takes to load and a move to come back.

For each agent, serves a fresh game on a free loopback port, loads the page ``--loads`` times (from
navigation until the board is drawn from ``/api/state``), then plays ``--moves`` of your moves by
clicking (the first free column nearest the centre) and times each click until the agent's reply is
drawn. The agent's own thinking time (``agent_seconds``) is read from the server, so the page's
overhead is the difference. ``--screenshot PATH`` saves the page of the last agent after its 3rd
reply (the docs' picture). Needs Debian's ``chromium`` and ``chromium-driver`` and selenium
(``[dev]``). Prints a table, then one JSON object as the last line.

    python benchmarks/bench_web_play.py [--agents models/pretrained/model.zip mcts:models/pretrained/model.zip:400]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from selenium.webdriver.support.ui import WebDriverWait

from connectx_gym.agents.mcts import MctsAgent
from connectx_gym.evaluation.plan import build_agent
from connectx_gym.web.browser import headless_chromium
from connectx_gym.web.server import GameSession, make_server

DEFAULT_AGENTS = ("random", "models/pretrained/model.zip", "mcts:models/pretrained/model.zip:400")


def drawn(driver, ply: int) -> bool:
    body = driver.find_element("tag name", "body")
    return not body.get_attribute("data-busy") and int(body.get_attribute("data-ply") or -1) >= ply


def measure(driver, spec: str, loads: int, moves: int, screenshot: str | None) -> dict:
    entry = build_agent(spec)
    if isinstance(entry.agent, MctsAgent):
        entry.agent.reuse = True  # as play does
    session = GameSession(entry.agent, entry.label, {"rows": 6, "columns": 7, "inarow": 4})
    server = make_server(session, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    try:
        load_ms = []
        for _ in range(loads):
            started = time.perf_counter()
            driver.get(url)
            WebDriverWait(driver, 30, poll_frequency=0.005).until(lambda d: drawn(d, 0))
            load_ms.append(1000 * (time.perf_counter() - started))
        move_ms, agent_ms = [], []
        for _ in range(moves):
            state = session.state()
            if state["result"] is not None:
                break
            column = min(state["legal"], key=lambda c: abs(c - 3))
            ply = len(state["moves"])
            started = time.perf_counter()
            driver.find_element("css selector", f".column[data-col='{column}']").click()
            WebDriverWait(driver, 60, poll_frequency=0.005).until(
                lambda d, ply=ply: drawn(d, ply + 2) or d.find_element("id", "status").get_attribute("data-result")
            )
            move_ms.append(1000 * (time.perf_counter() - started))
            agent_ms.append(1000 * (session.state()["agent_seconds"] or 0.0))
            if screenshot and len(move_ms) == 3:
                driver.save_screenshot(screenshot)
    finally:
        server.shutdown()
        server.server_close()
    overhead = [m - a for m, a in zip(move_ms, agent_ms)]
    return {
        "agent": spec,
        "page_load_ms": statistics.median(load_ms),
        "move_ms": statistics.median(move_ms),
        "agent_ms": statistics.median(agent_ms),
        "page_overhead_ms": statistics.median(overhead),
        "moves": len(move_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS), help="agent specs")
    parser.add_argument("--loads", type=int, default=5, help="page loads per agent (default: 5)")
    parser.add_argument("--moves", type=int, default=8, help="your moves per agent (default: 8)")
    parser.add_argument("--screenshot", metavar="PATH", help="save the last agent's page after its 3rd reply")
    args = parser.parse_args()
    driver = headless_chromium(width=1040, height=820)
    try:
        rows = []
        for i, spec in enumerate(args.agents):
            shot = args.screenshot if i == len(args.agents) - 1 else None
            rows.append(measure(driver, spec, args.loads, args.moves, shot))
    finally:
        driver.quit()
    print(f"{'agent':<42} {'page load':>10} {'move':>9} {'agent':>9} {'page':>9}")
    for row in rows:
        print(
            f"{row['agent']:<42} {row['page_load_ms']:>8.0f}ms {row['move_ms']:>7.0f}ms {row['agent_ms']:>7.0f}ms "
            f"{row['page_overhead_ms']:>7.0f}ms"
        )
    print("(medians; move: click until the reply is drawn; page: move minus the agent's own time)")
    print(json.dumps({"agents": rows}))


if __name__ == "__main__":
    main()

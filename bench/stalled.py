"""Stalled request bodies and idle connections from one address, against `engage serve`.

    python bench/stalled.py                          # 1,000 stalled + 1,000 idle, held 30 s
    python bench/stalled.py --stalled 300 --idle 0   # the issue's first report

Everything on loopback: one redis-server this script starts, `engage serve` with its
default workers, and from this process:

- the attacker: `--stalled` connections that each send a vote's headers with
  `Content-Length: 1000` and one byte of body, then nothing, and `--idle` connections
  that send nothing at all. One the server answers or closes is opened again at once,
  so the count holds for `--hold` seconds;
- another client, meanwhile: anonymous reads and new-reader votes from two threads, each
  request on a new connection with a 5 s timeout: p50, p99, failures;
- after the attacker closes everything: how long until a read answers 200 again, and the
  p99 of the next 3 s of reads and votes.

Results: bench/results/stalled-<stamp>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from run import (  # noqa: E402
    SECRET,
    SERVE_WORKERS,
    EngageData,
    engage_env,
    engage_serve_args,
    log,
    redis_server,
    start_server,
)

from engage.identity import Identity  # noqa: E402

READ = "/api/v1/articles/bench-read/reactions"
VOTE = "/api/v1/articles/bench-vote/reactions/mine"
STALLED_HEAD = (f"PUT {VOTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{").encode()


class Attacker:
    """Holds `stalled` + `idle` connections open from one thread until `close()`."""

    def __init__(self, port: int, stalled: int, idle: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.answers: dict[str, int] = {}
        self.reopened = 0
        self.refused = 0
        self.stop = threading.Event()
        for n in range(stalled + idle):
            self._open("stalled" if n < stalled else "idle")
        self.thread = threading.Thread(target=self._watch)
        self.thread.start()

    def _open(self, kind: str) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if kind == "stalled":
                sock.sendall(STALLED_HEAD)
        except OSError:
            self.refused += 1
            return
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, kind)

    def _watch(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                sock, kind = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                status = data[9:12].decode(errors="replace") if data else "closed"
                self.answers[f"{kind}: {status}"] = self.answers.get(f"{kind}: {status}", 0) + 1
                self.selector.unregister(sock)
                sock.close()
                self.reopened += 1
                self._open(kind)

    def held(self) -> int:
        return len(self.selector.get_map())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for key in list(self.selector.get_map().values()):
            self.selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]


class Client:
    """Reads and new-reader votes, each on a new connection, until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.identity = Identity(SECRET, [])
        self.outcomes: list[tuple[str, float, int]] = []
        self.lock = threading.Lock()

    def one(self, kind: str) -> tuple[float, int]:
        started = time.perf_counter()
        try:
            if kind == "read":
                status = requests.get(self.url + READ, timeout=5).status_code
            else:
                status = requests.put(self.url + VOTE, json={"choice": "yes"}, timeout=5,
                                      headers={"X-Engage-Reader": self.identity.mint_reader()}
                                      ).status_code
        except requests.RequestException:
            status = 0
        return (time.perf_counter() - started) * 1000, status

    def run(self, seconds: float) -> dict[str, Any]:
        """Both kinds from two threads for `seconds`: figures per kind."""
        outcomes: list[tuple[str, float, int]] = []
        until = time.monotonic() + seconds

        def loop(kind: str) -> None:
            while time.monotonic() < until:
                ms, status = self.one(kind)
                with self.lock:
                    outcomes.append((kind, ms, status))
                time.sleep(0.02)

        threads = [threading.Thread(target=loop, args=(k,)) for k in ("read", "vote")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {kind: figures([(ms, s) for k, ms, s in outcomes if k == kind])
                for kind in ("read", "vote")}


def figures(outcomes: list[tuple[float, int]]) -> dict[str, Any]:
    ok = sorted(ms for ms, status in outcomes if status == 200)
    every = sorted(ms for ms, _ in outcomes)
    return {
        "requests": len(outcomes),
        "failed": len(outcomes) - len(ok),
        "p50_ms": round(every[len(every) // 2], 1) if every else None,
        "p99_ms": round(every[min(len(every) - 1, int(len(every) * 0.99))], 1) if every else None,
    }


def rss_mib(pid: int) -> float:
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 2**20, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stalled", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the attack is held")
    parser.add_argument("--label", default="", help="added to the result's name")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.stalled + args.idle + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    result: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                              "workers": SERVE_WORKERS, **vars(args)}
    with tempfile.TemporaryDirectory(prefix="engage-stalled-") as tmp:
        work = Path(tmp)
        with redis_server(work) as (redis_url, _):
            EngageData(redis_url, work)
            server = start_server("engage", engage_serve_args(SERVE_WORKERS),
                                  {**engage_env(redis_url, work), "ENGAGE_LOG_JSON": "0"},
                                  work, ready_path="/healthz")
            port = int(server.url.rpartition(":")[2])
            client = Client(server.url)
            try:
                time.sleep(1.0)  # the workers finish starting
                client.run(1.0)  # warm-up: threads and Redis connections
                result["rss_mib_before"] = rss_mib(server.process.pid)
                result["before"] = client.run(5.0)
                log(f"before: {result['before']}")
                opened = time.monotonic()
                attacker = Attacker(port, args.stalled, args.idle)
                result["open_s"] = round(time.monotonic() - opened, 2)
                log(f"attacker holds {attacker.held()} connections ({result['open_s']} s)")
                try:
                    result["during"] = client.run(args.hold)
                    result["held_at_end"] = attacker.held()
                    result["rss_mib_during"] = rss_mib(server.process.pid)
                finally:
                    attacker.close()
                closed = time.monotonic()
                log(f"during: {result['during']}")
                result["attacker_answers"] = attacker.answers
                result["attacker_refused"] = attacker.refused
                while True:
                    ms, status = client.one("read")
                    if status == 200:
                        break
                    if time.monotonic() - closed > 60:
                        break
                result["back_after_s"] = round(time.monotonic() - closed, 2)
                result["after"] = client.run(3.0)
                result["server_alive"] = server.process.poll() is None
                log(f"back after {result['back_after_s']} s; after: {result['after']}")
            finally:
                server.stop()
    write(result)
    return 0


def write(result: dict[str, Any]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"stalled-{stamp}{'-' + result['label'] if result['label'] else ''}"
    out = BENCH / "results"
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        f"# Stalled bodies and idle connections ({result['when']})",
        "",
        f"`python bench/stalled.py --stalled {result['stalled']} --idle {result['idle']} "
        f"--hold {result['hold']:g}`; engage serve with {result['workers']} workers.",
        "",
        "| phase | read p50 / p99 ms | read failed (of) | vote p50 / p99 ms | vote failed (of) |",
        "|---|---|---|---|---|",
    ]
    for phase in ("before", "during", "after"):
        read, vote = result[phase]["read"], result[phase]["vote"]
        rows.append(f"| {phase} | {read['p50_ms']} / {read['p99_ms']} | {read['failed']} "
                    f"({read['requests']}) | {vote['p50_ms']} / {vote['p99_ms']} | "
                    f"{vote['failed']} ({vote['requests']}) |")
    rows += [
        "",
        f"- connections opened in {result['open_s']} s; held at the end: "
        f"{result['held_at_end']}; refused while opening: {result['attacker_refused']}",
        f"- what the attacker's connections got: {result['attacker_answers'] or 'nothing'}",
        f"- RSS of engage serve and its workers: {result['rss_mib_before']} MiB before, "
        f"{result['rss_mib_during']} MiB during",
        f"- first read answered 200 {result['back_after_s']} s after the attacker closed; "
        f"server still running: {result['server_alive']}",
        "",
    ]
    (out / f"{name}.md").write_text("\n".join(rows))
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())

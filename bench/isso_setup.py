"""Seed an isso database for the benchmark (run with the isso venv's python).

Usage: isso_setup.py CONFIG_PATH DB_PATH COMMENTS
Writes an isso config (trusting X-Forwarded-For from loopback, so each benchmark vote
can come from another address) and one thread with COMMENTS comments to vote on.
"""

from __future__ import annotations

import sys
import time

from isso import config, db

CONFIG = """[general]
dbpath = {db}
host = http://127.0.0.1/
[server]
listen = http://127.0.0.1:0/
trusted-proxies = 127.0.0.1
[guard]
enabled = false
[moderation]
enabled = false
"""


def main() -> None:
    config_path, db_path, comments = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(config_path, "w") as handle:
        handle.write(CONFIG.format(db=db_path))
    conf = config.load(config.default_file(), config_path)
    store = db.SQLite3(conf.get("general", "dbpath"), conf)
    store.threads.new("/post", "Benchmark post")
    for n in range(comments):
        store.comments.add("/post", {
            "text": f"comment {n}", "author": None, "email": None, "website": None,
            "remote_addr": "192.0.2.1", "parent": None, "mode": 1, "created": time.time(),
            "notification": 0,
        })
    print(comments)


if __name__ == "__main__":
    main()

"""Running the app under gunicorn from `engage serve`."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any


def gunicorn_config_path() -> str | None:
    """The repository's gunicorn.conf.py, when engage runs from a checkout."""
    path = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
    return str(path) if path.exists() else None


def run_gunicorn(bind: str, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class EngageApplication(BaseApplication):
        def load_config(self) -> None:
            config_file = gunicorn_config_path()
            if config_file:
                # BaseApplication has no config-file loader: read the file as gunicorn -c
                # would, keeping only names gunicorn knows (hooks included).
                for name, value in runpy.run_path(config_file).items():
                    if name in self.cfg.settings and value is not None:
                        self.cfg.set(name.lower(), value)
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", workers)

        def load(self) -> Any:
            from engage import create_app

            return create_app()

    EngageApplication().run()

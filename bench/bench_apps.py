"""engage app variants for the benchmark's alternatives (hiredis off, orjson on)."""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask, current_app


def engage_app() -> Flask:
    if os.environ.get("BENCH_NO_HIREDIS"):
        # redis-py picks its C parser when `import hiredis` works; make it fail.
        sys.modules["hiredis"] = None  # type: ignore[assignment]
    from engage import create_app

    app = create_app()
    if os.environ.get("BENCH_ORJSON"):
        app.json = OrjsonProvider(app)
    import redis.utils

    app.logger.warning("bench variant: hiredis=%s json=%s", redis.utils.HIREDIS_AVAILABLE,
                       type(app.json).__name__)
    return app


class OrjsonProvider:
    """Flask JSON provider backed by orjson (keys kept in insertion order, like engage)."""

    def __new__(cls, app: Flask) -> Any:
        import orjson
        from flask.json.provider import DefaultJSONProvider

        class Provider(DefaultJSONProvider):
            def dumps(self, obj: Any, **kwargs: Any) -> str:
                return orjson.dumps(obj).decode()

            def loads(self, s: str | bytes, **kwargs: Any) -> Any:
                return orjson.loads(s)

            def response(self, *args: Any, **kwargs: Any) -> Any:
                # What `jsonify` documents: one argument as is, several as a list,
                # keyword arguments as an object.
                if args and kwargs:
                    raise TypeError("response() takes positional or keyword arguments")
                obj = args[0] if len(args) == 1 else (list(args) if args else kwargs)
                return current_app.response_class(
                    orjson.dumps(obj) + b"\n", mimetype=self.mimetype
                )

        return Provider(app)

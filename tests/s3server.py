"""A real S3 API on a loopback port (moto's server), for the object-store tests and benchmark.

The server is moto's WSGI application behind werkzeug, with a thin layer that counts the
requests it answers, so a test can tell how many objects a run downloaded, and that can stop
the server at a chosen request (a store that goes away in the middle of a run).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Credentials the tests sign with (moto accepts any while it does not check them).
KEY, SECRET = "testing", "testing-secret"


@dataclass
class Requests:
    """The requests the server answered: ``(method, path)``, and when to stop answering."""

    seen: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Called with each request before it is answered; may stop the server.
    hook: Callable[[str, str], None] | None = None

    def object_gets(self, bucket: str) -> list[str]:
        """The keys of ``bucket`` downloaded (``GET /bucket/key``, not listings)."""
        with self.lock:
            return [
                path.split("/", 2)[2]
                for method, path in self.seen
                if method == "GET" and path.startswith(f"/{bucket}/") and path.count("/") >= 2
            ]


class _Counting:
    def __init__(self, app: Any, requests: Requests) -> None:
        self.app = app
        self.requests = requests

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self.requests.lock:
            self.requests.seen.append((method, path))
        if self.requests.hook is not None:
            self.requests.hook(method, path)
        return self.app(environ, start_response)


class S3Server:
    """moto's S3 on ``127.0.0.1`` and a free port, in a thread of this process."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.requests = Requests()
        app = _Counting(DomainDispatcherApplication(create_backend_app), self.requests)
        self._server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
        )
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        """Stop answering and close the port (connections are refused from now on)."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def stop_soon(self) -> None:
        """Stop from within a request (the serving thread cannot wait for itself)."""
        threading.Thread(target=self.stop, daemon=True).start()

    def client(self, key: str = KEY, secret: str = SECRET) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )

    def new_bucket(self, files: Iterable[Path], prefix: str = "docs/") -> str:
        """A new bucket holding ``files`` under ``prefix`` (by file name)."""
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        client = self.client()
        client.create_bucket(Bucket=bucket)
        for path in files:
            client.upload_file(str(path), bucket, prefix + path.name)
        return bucket

    def options(self, key: str = KEY, secret: str = SECRET, **more: Any) -> dict[str, Any]:
        """The ``remote`` settings section that reads this server."""
        s3 = {
            "endpoint_url": self.endpoint,
            "key": key,
            "secret": secret,
            # A refused connection is retried by ingest (remote.retries), not by botocore.
            "config_kwargs": {"retries": {"max_attempts": 1}},
        }
        return {"storage_options": {"s3": s3}, "retries": 1, "retry_wait": 0.0, **more}

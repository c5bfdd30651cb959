"""Alert destinations on loopback for the alerts tests: a JSON webhook (apprise's ``json://``) that answers with
the statuses it is told to, and a real SMTP server (aiosmtpd) for ``mailto://``. Both bind port 0."""

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.smtp import SMTP

# The secret part of the test URLs: no file a run writes may hold it.
WEBHOOK_TOKEN = "whk-7f3a9c1e5b2d4088-secret"


@dataclass
class Webhook:
    """Received JSON posts (apprise's payload: title, message, ...) and the statuses to answer, in order; once
    they run out it answers 200."""

    port: int = 0
    posts: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def url(self, token: str = WEBHOOK_TOKEN) -> str:
        return f"json://127.0.0.1:{self.port}/hooks/{token}"

    def answer(self, *statuses: int) -> None:
        self.statuses[:] = statuses


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    hook = Webhook()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.posts.append(json.loads(body))
                    hook.paths.append(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    def url(self, to: str = "ops@example.com") -> str:
        # mailto:// without TLS: mode=insecure speaks plain SMTP; no user, so no login.
        return f"mailto://127.0.0.1:{self.port}?from=dds@example.com&to={to}&mode=insecure"

    def text(self, index: int) -> str:
        """The text of message ``index``: its plain part when it has several."""
        return self.messages[index].get_body(("plain", "html")).get_content()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd on its own event loop in a thread, on a socket bound to port 0 first (its Controller cannot)."""
    box = Mailbox()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    box.port = listening.getsockname()[1]
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SMTP(box, hostname="127.0.0.1"), sock=listening))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        loop.call_soon_threadsafe(server.close)
        asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def refused_port() -> int:
    """A loopback port nothing listens on (bound and closed: the kernel refuses connections to it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

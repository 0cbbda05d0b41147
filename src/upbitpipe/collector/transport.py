"""The WebSocket under a connection: open it, send text, receive frames in batches.

Two implementations of one small interface (``WireSession``), chosen by ``upbit.transport``:
``picows`` (``transport_picows``; the default, about half the CPU per message) and
``websockets`` (kept as a fallback). A session hands received frames over as batches of
``(payload bytes, received_ms)``, in arrival order, and raises ``WireClosed`` once the
socket is gone and every frame received before that was handed over.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Literal, Protocol, Self

import websockets
from websockets.asyncio.client import ClientConnection, connect

Frame = tuple[bytes, int]  # payload, wall-clock ms when it was read off the socket
TransportName = Literal["picows", "websockets"]

MAX_MESSAGE_BYTES = 2**22  # larger messages are a protocol error (Upbit's are a few kB)
CLOSE_TIMEOUT_SECONDS = 2.0  # do not wait long behind a backlogged server at shutdown


class WireError(Exception):
    """The WebSocket could not be opened or broke (handshake refused, protocol error)."""

    @classmethod
    def about(cls, exc: BaseException) -> Self:
        """One line naming what the WebSocket library raised."""
        return cls(f"{type(exc).__name__}: {exc}")


class WireClosed(WireError):
    """The socket is closed (by the peer, the network, the watchdog or ``close``)."""


class WireSession(Protocol):
    async def send_text(self, text: str) -> None: ...

    async def receive(self) -> list[Frame]:
        """The next frames, at least one; ``WireClosed`` once the socket is gone."""
        ...

    def abort(self) -> None:
        """Drop the socket at once (no closing handshake): the watchdog's way out."""

    async def close(self) -> None:
        """Closing handshake, bounded by ``CLOSE_TIMEOUT_SECONDS``; then the socket is gone."""


def open_session(
    transport: TransportName, url: str, *, open_timeout: float
) -> contextlib.AbstractAsyncContextManager[WireSession]:
    """Connect (TCP, TLS for wss:// with the system's CAs or ``SSL_CERT_FILE``, upgrade)
    within ``open_timeout``; the socket is closed when the block exits."""
    if transport == "picows":
        from upbitpipe.collector.transport_picows import open_picows

        return open_picows(url, open_timeout=open_timeout)
    return _open_websockets(url, open_timeout=open_timeout)


@contextlib.asynccontextmanager
async def _open_websockets(url: str, *, open_timeout: float) -> AsyncIterator[WireSession]:
    try:
        async with connect(
            url,
            open_timeout=open_timeout,
            ping_interval=None,  # Upbit's keepalive is a text PING (UpbitConnection)
            max_size=MAX_MESSAGE_BYTES,
            max_queue=1024,  # frames websockets buffers before TCP flow control (memory)
            compression=None,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
        ) as ws:
            yield WebsocketsSession(ws)
    except websockets.WebSocketException as exc:
        raise WireError.about(exc) from exc


class WebsocketsSession:
    """One frame per batch: ``websockets`` has no way to take what it has buffered at once."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send_text(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except websockets.ConnectionClosed as exc:
            raise WireClosed.about(exc) from exc

    async def receive(self) -> list[Frame]:
        try:
            frame = await self._ws.recv()
        except websockets.ConnectionClosed as exc:
            raise WireClosed.about(exc) from exc
        raw = frame.encode() if isinstance(frame, str) else frame
        return [(raw, int(time.time() * 1000))]

    def abort(self) -> None:
        self._ws.transport.abort()

    async def close(self) -> None:
        await self._ws.close()

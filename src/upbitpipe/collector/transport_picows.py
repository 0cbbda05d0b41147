"""``picows`` under a connection: frames buffered by a synchronous callback, read in batches.

picows parses frames in C and calls ``on_ws_frame`` for each, synchronously, from the event
loop's read callback. The listener copies the payload with the wall-clock time into a list
and wakes the session's reader, which takes the whole list as one batch. When the list
holds ``MAX_BUFFERED_FRAMES`` frames or ``MAX_BUFFERED_BYTES`` bytes the socket stops being
read (TCP flow control pushes back on the server) until the reader takes the batch: frames
are never dropped, and memory stays bounded while the sinks are slow.

picows leaves two things to its user that ``websockets`` did itself: assembling fragmented
messages (CONTINUATION frames) and answering the server's CLOSE frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import socket
import ssl
from collections.abc import AsyncIterator
from time import time_ns

import picows
from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport

from upbitpipe.collector.transport import (
    CLOSE_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
    Frame,
    WireClosed,
    WireError,
    WireSession,
)

MAX_BUFFERED_FRAMES = 1024  # then pause reading until the reader takes them
MAX_BUFFERED_BYTES = 4 * 2**20
MAX_BATCH_FRAMES = 1024  # handed over at once (the sinks' bounds see batches of this size)
# The kernel's receive buffer for the socket. picows parses all it read in one go, whatever
# the pause, and doubles its read buffer whenever a read fills it: left to TCP autotuning
# (up to tcp_rmem's max, often 6-32 MB) a slow sink made both grow to that size. 1 MiB
# (Linux doubles it) still carries far more than Upbit sends per round trip.
RECEIVE_BUFFER_BYTES = 2**20

log = logging.getLogger(__name__)

_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)
_PAYLOAD = operator.itemgetter(0)  # of a Frame


class _Listener(picows.WSListener):
    """Buffers the frames of one socket for ``PicowsSession.receive``."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.buffered_bytes = 0
        self.paused = False
        self.pauses = 0  # times reading was paused (the buffer was full)
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self._parts: list[bytes] = []  # a fragmented message so far
        self._parts_bytes = 0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        # called for every frame: a whole data message is the fast path, the rest is
        # ``_other_frame``; the reader's waiter is woken once per batch (then dropped)
        payload: bytes | None
        if frame.fin and frame.msg_type in _DATA:
            payload = frame.get_payload_as_bytes()
        else:
            payload = self._other_frame(transport, frame)
            if payload is None:
                return
        frames = self.frames
        frames.append((payload, time_ns() // 1_000_000))
        self.buffered_bytes += len(payload)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if not self.paused and (
            len(frames) >= MAX_BUFFERED_FRAMES or self.buffered_bytes >= MAX_BUFFERED_BYTES
        ):
            self.paused = True
            self.pauses += 1
            transport.underlying_transport.pause_reading()

    def _other_frame(self, transport: WSTransport, frame: WSFrame) -> bytes | None:
        """A fragment (the whole message once its last one is here), CLOSE or PONG: the
        message's payload, or None."""
        msg_type = frame.msg_type
        if msg_type in _DATA:  # first fragment
            self._parts = [frame.get_payload_as_bytes()]
            self._parts_bytes = frame.payload_size
            return None
        if msg_type is WSMsgType.CONTINUATION:
            if not self._parts:
                raise picows.WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR, "continuation frame without a first fragment"
                )
            self._parts_bytes += frame.payload_size
            if self._parts_bytes > MAX_MESSAGE_BYTES:
                raise picows.WSProtocolError(
                    WSCloseCode.MESSAGE_TOO_BIG,
                    f"fragmented message over {MAX_MESSAGE_BYTES} bytes",
                )
            self._parts.append(frame.get_payload_as_bytes())
            if not frame.fin:
                return None
            payload = b"".join(self._parts)
            self._parts = []
            return payload
        if msg_type is WSMsgType.CLOSE:
            # answer the closing handshake, then drop the socket (the server closes too)
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        return None  # PONG (PINGs are answered by picows itself)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.disconnected = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class PicowsSession:
    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self._transport = transport
        self._listener = listener

    @property
    def buffered(self) -> int:
        """Frames received and not yet taken by ``receive``."""
        return len(self._listener.frames)

    @property
    def reading_paused(self) -> bool:
        return self._listener.paused

    @property
    def pauses(self) -> int:
        return self._listener.pauses

    async def send_text(self, text: str) -> None:
        if self._transport.is_disconnected:
            raise WireClosed(await self._why_closed())
        self._transport.send(WSMsgType.TEXT, text.encode())

    async def receive(self) -> list[Frame]:
        listener = self._listener
        while not listener.frames:
            if listener.disconnected:
                raise WireClosed(await self._why_closed())
            waiter = asyncio.get_running_loop().create_future()
            listener.waiter = waiter
            try:
                await waiter
            finally:
                listener.waiter = None
        frames = listener.frames
        if len(frames) <= MAX_BATCH_FRAMES:
            batch = frames
            listener.frames = []
            listener.buffered_bytes = 0
        else:
            batch = frames[:MAX_BATCH_FRAMES]
            del frames[:MAX_BATCH_FRAMES]
            listener.buffered_bytes -= sum(map(len, map(_PAYLOAD, batch)))  # summed in C
        if (
            listener.paused
            and len(listener.frames) < MAX_BUFFERED_FRAMES
            and listener.buffered_bytes < MAX_BUFFERED_BYTES
        ):
            listener.paused = False
            if not self._transport.is_disconnected:
                self._transport.underlying_transport.resume_reading()
        return batch

    def abort(self) -> None:
        self._transport.disconnect(graceful=False)

    async def close(self) -> None:
        transport = self._transport
        if transport.is_disconnected:
            return
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()  # after the CLOSE frame is written
        try:
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT_SECONDS)
        except TimeoutError:
            transport.disconnect(graceful=False)
        except Exception as exc:  # what broke it was seen by ``receive`` already
            log.debug("closing: %s", exc)

    async def _why_closed(self) -> str:
        """The close code the server sent, or what picows saw go wrong."""
        transport = self._transport
        try:
            await transport.wait_disconnected()
        except Exception as exc:  # an error picows detected (protocol violation, ...)
            return f"{type(exc).__name__}: {exc}"
        handshake = transport.close_handshake
        received = handshake.recv if handshake is not None else None
        if received is None:
            return "connection lost (no close frame received)"
        code = getattr(received.code, "value", received.code)
        return f"closed by the server: {code} {received.reason}".rstrip()


@contextlib.asynccontextmanager
async def open_picows(url: str, *, open_timeout: float) -> AsyncIterator[WireSession]:
    # wss://: the default context reads the system CAs, or SSL_CERT_FILE when it is set
    # (how a client trusts `replay serve --tls`)
    context = ssl.create_default_context() if url.startswith("wss://") else None
    try:
        transport, listener = await asyncio.wait_for(
            picows.ws_connect(
                _Listener,
                url,
                ssl_context=context,
                websocket_handshake_timeout=open_timeout,
                max_frame_size=MAX_MESSAGE_BYTES,
                enable_auto_ping=False,  # Upbit's keepalive is a text PING (UpbitConnection)
            ),
            open_timeout,
        )
    except picows.WSError as exc:
        raise WireError.about(exc) from exc
    assert isinstance(listener, _Listener)
    sock = transport.underlying_transport.get_extra_info("socket")
    if sock is not None and RECEIVE_BUFFER_BYTES:  # 0: left to the kernel
        with contextlib.suppress(OSError):  # already closed by the server: receive says so
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    session = PicowsSession(transport, listener)
    try:
        yield session
    finally:
        await session.close()

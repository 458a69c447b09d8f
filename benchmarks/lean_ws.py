"""A WebSocket client cut down to what a load generator needs, so that the generator is not
what limits a load test.

aiohttp's client spends about as much CPU per frame as the server under test does; thousands
of its sockets on these 2-core machines made the generator, not the server, the first thing to
fall behind. `LeanSocket` is an asyncio protocol: it does the HTTP upgrade, writes client frames
with a zero masking key (legal, and the payload is then the frame as it is; servers unmask
whatever key they get), answers pings, and hands text frames to a callback as bytes, so the
generator decodes only what it measures. Fragmented frames are not supported (neither server
under test sends them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Callable
from typing import Any

_MASK = b"\x00\x00\x00\x00"
_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(payload: bytes, opcode: int = _TEXT) -> bytes:
    """One final, masked (with the zero key) client frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + _MASK + payload


class LeanSocket(asyncio.Protocol):
    """One client WebSocket. Until `on_text` is set, text frames queue up for `receive_json`
    (the set-up's hello and admission); after, each goes to `on_text` as bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_text: Callable[[bytes], None] | None = None
        self.close_code: int | None = None  # the server's close code, once it closed
        self.closed = asyncio.get_running_loop().create_future()  # set when the TCP link ends
        self._upgraded = asyncio.get_running_loop().create_future()
        self._texts: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffer = bytearray()

    @classmethod
    async def connect(cls, host: str, port: int, path: str, cookie: str = "") -> LeanSocket:
        loop = asyncio.get_running_loop()
        _, sock = await loop.create_connection(cls, host, port)
        assert sock.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + (f"Cookie: {cookie}\r\n" if cookie else "")
            + "\r\n"
        )
        sock.transport.write(request.encode())
        await sock._upgraded
        return sock

    # --- sending ------------------------------------------------------------------------

    def send_bytes_text(self, payload: bytes) -> int:
        """Write one text frame whose payload is already UTF-8 JSON: 1 if written, 0 if the
        socket has closed."""
        if self.transport is None or self.transport.is_closing():
            return 0
        self.transport.write(client_frame(payload))
        return 1

    def send_json(self, data: Any) -> None:
        if not self.send_bytes_text(json.dumps(data).encode()):
            raise ConnectionError("the socket has closed")

    async def receive_json(self) -> Any:
        return json.loads(await self._texts.get())

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(struct.pack("!H", 1000), _CLOSE))
            self.transport.close()

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._upgraded.done():
            self._upgraded.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded.done() and not self._read_upgrade():
            return
        self._read_frames()

    def _read_upgrade(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(self._buffer[:end]).split(b"\r\n", 1)[0]
        del self._buffer[: end + 4]
        if b" 101 " not in status:
            self._upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return False
        self._upgraded.set_result(None)
        return True

    def _read_frames(self) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            opcode, size, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                (size,), start = struct.unpack_from("!H", buffer, 2), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                (size,), start = struct.unpack_from("!Q", buffer, 2), 10
            if len(buffer) < start + size:
                return
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            self._frame(opcode, payload)

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == _TEXT:
            if self.on_text is not None:
                self.on_text(payload)
            else:
                self._texts.put_nowait(payload)
        elif opcode == _PING:
            assert self.transport is not None
            self.transport.write(client_frame(payload, _PONG))
        elif opcode == _CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            assert self.transport is not None
            self.transport.close()

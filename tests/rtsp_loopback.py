"""A tiny RTSP server on loopback for tests: it serves one MPEG-TS byte string as RTP (payload type 33,
MP2T, RFC 2250) interleaved on the RTSP connection (RFC 2326 section 10.12), as an IP camera or a
media server would. It answers OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER and TEARDOWN; a SETUP
asking for RTP over UDP gets 461 (Unsupported Transport), so the client falls back to TCP, as
FFmpeg's does. After PLAY it sends the stream at ``rate`` times real time and then closes the
connection: the stream's end.

Only what a client needs to play one stream; any other path is a 404, which the client must report.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

TS_PACKET = 188
PER_RTP = 7  # 7 x 188 = 1316 bytes: the usual MP2T-over-RTP payload, under a 1500-byte MTU


class RtspLoopback:
    """Serve ``ts`` (MPEG-TS bytes) at ``rtsp://127.0.0.1:{port}/{path}``; ``seconds``: its duration (for
    pacing). Use as a context manager; ``requests`` lists the methods received, in order."""

    def __init__(self, ts: bytes, seconds: float, path: str = "live", rate: float = 4.0) -> None:
        if len(ts) % TS_PACKET:
            raise ValueError("MPEG-TS data must be whole 188-byte packets")
        self.ts, self.seconds, self.path, self.rate = ts, seconds, path, rate
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"rtsp://127.0.0.1:{self.port}/{path}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RtspLoopback:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()

    # -------------------------------------------------------------------------- the protocol
    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, url, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", "0"))
                while len(buf) < length:
                    buf += conn.recv(4096)
                buf = buf[length:]
                self.requests.append(method)
                if not self._answer(conn, method, url, headers):
                    return

    def _reply(self, conn: socket.socket, cseq: str, status: str = "200 OK", extra: str = "", body: str = "") -> None:
        text = f"RTSP/1.0 {status}\r\nCSeq: {cseq}\r\n{extra}"
        if body:
            text += f"Content-Length: {len(body)}\r\n"
        conn.sendall((text + "\r\n" + body).encode("latin-1"))

    def _answer(self, conn: socket.socket, method: str, url: str, headers: dict[str, str]) -> bool:
        """Answer one request; False when the session is over."""
        cseq = headers.get("cseq", "0")
        base = f"rtsp://127.0.0.1:{self.port}/{self.path}"
        if method == "OPTIONS":
            self._reply(conn, cseq, extra="Public: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN\r\n")
        elif not url.startswith(base):
            self._reply(conn, cseq, "404 Not Found")
        elif method == "DESCRIBE":
            sdp = (
                "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=foleygen loopback\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=video 0 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\na=control:track0\r\n"
            )
            extra = f"Content-Base: {base}/\r\nContent-Type: application/sdp\r\n"
            self._reply(conn, cseq, extra=extra, body=sdp)
        elif method == "SETUP":
            transport = headers.get("transport", "")
            if "RTP/AVP/TCP" not in transport:
                self._reply(conn, cseq, "461 Unsupported Transport")
            else:
                extra = "Session: 37373737\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
                self._reply(conn, cseq, extra=extra)
        elif method == "PLAY":
            self._reply(conn, cseq, extra="Session: 37373737\r\nRange: npt=0.000-\r\n")
            self._stream(conn)
            return False  # the stream ends with the connection
        elif method == "TEARDOWN":
            self._reply(conn, cseq, extra="Session: 37373737\r\n")
            return False
        else:  # GET_PARAMETER (a keep-alive) and anything else harmless
            self._reply(conn, cseq, extra="Session: 37373737\r\n")
        return True

    def _stream(self, conn: socket.socket) -> None:
        """RTP packets of 7 TS packets each, framed as ``$ channel length`` on the RTSP connection."""
        chunk = TS_PACKET * PER_RTP
        count = -(-len(self.ts) // chunk)
        start = time.perf_counter()
        for seq in range(count):
            payload = self.ts[seq * chunk : (seq + 1) * chunk]
            at = seq / count * self.seconds  # spread evenly over the stream's duration
            header = struct.pack("!BBHII", 0x80, 33, seq & 0xFFFF, round(at * 90000) & 0xFFFFFFFF, 0x37373737)
            rtp = header + payload
            delay = start + at / self.rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                conn.sendall(b"$\x00" + struct.pack("!H", len(rtp)) + rtp)
            except OSError:  # the client went away
                return
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

#!/usr/bin/env python3
"""Loopback HTTP fault-injection server for the diaspora HTTP-client integration tests.

Python 3.11, standard library only. Binds ONLY 127.0.0.1 and never opens an outgoing connection (the
HTTPServer reverse-DNS lookup of the bind address is disabled; `/redirect` only *returns* a Location).

Startup protocol
----------------
    python3 tests/http/fault_server.py --repo /path/to/repo [--verbose]

* Binds two ThreadingHTTPServer sockets on 127.0.0.1 with OS-chosen ports: A (main) and B ("another origin").
* Writes exactly one line `PORTS <A> <B>\\n` to stdout and flushes; nothing else is ever written to stdout.
* Serves until stdin reaches EOF (the test keeps the write end of a pipe; when the test process dies the pipe
  closes and the server exits), and in any case exits after 300 s. Exit status 0. With stdin = /dev/null it
  exits at once, so hold a pipe (e.g. `sleep 1000 | python3 tests/http/fault_server.py --repo .`).
* Nothing is written to stderr unless --verbose (access log) or a handler crashes (traceback), so a test
  that pipes stderr without reading it cannot dead-lock the server.

HTTP/1.1 with keep-alive; every normal response carries Content-Length (304 has no body and none).
Fixture paths are relative to --repo. Every request (except /_log and /_reset) is recorded in memory.
`<key>` is any token the test picks so that scenarios stay independent; counters are per (endpoint, key).
Path segments are taken verbatim; `<relpath>` is percent-decoded and must stay inside the repo.
`/_log?key=` matches against the raw request target as the client sent it (percent-encoding included).
The first /gzipbomb and the first SV_bigzip download each spend ~2 s building the payload (cached after):
give those requests a client timeout of several seconds, or warm them up once.

Endpoints on A (the main port)
------------------------------
Control
  GET  /_log[?key=<substring>]   200 JSON list (arrival order) of recorded requests whose path (with query)
                                 contains <substring> (all if absent). Entry fields: origin ("A"|"B"), port,
                                 method, path (with query), headers (dict, lower-case names, repeats joined
                                 with ", "), t (time.monotonic() at arrival, s), t_end (when the handler
                                 finished, null while in flight), body_len, body (UTF-8 text if decodable and
                                 <= 1 MiB else null), status (null until sent), response_headers, rpc_method
                                 (LimeSurvey JSON-RPC "method" or null).
  GET  /_reset                   200 {"ok":true}; clears the log and ALL counters.
Plain files
  GET  /ok/<relpath>             200 bytes of <repo>/<relpath>, ETag "<sha256 hex>", Last-Modified
                                 "Wed, 01 Jan 2025 00:00:00 GMT", Content-Type guessed from the extension.
                                 If-None-Match matching the ETag (or *) -> 304, no body. Missing -> 404.
Faults
  GET  /flaky/<key>/<n>/<relpath>      first n requests of the key -> 500 (short text), then as /ok.
  GET  /flaky503/<key>/<n>/<relpath>   same with 503.      GET /flaky502/<key>/<n>/<relpath>  same with 502.
  GET  /always500/<key>          always 503 with Retry-After: 0.
  GET  /status/<code>/<key>      that status (200..599) with a short text body (401 adds WWW-Authenticate).
  GET  /ratelimit/<key>/<relpath>        1st request 429 Retry-After: 1, then as /ok.
  GET  /ratelimit-date/<key>/<relpath>   1st request 429 with Retry-After = IMF-fixdate HTTP date
                                         ceil(now)+2 s (i.e. 2..3 s ahead), then as /ok.
  GET  /ratelimit-long/<key>     always 429 with Retry-After: 3600.
  GET  /drip/<key>/<relpath>     200, correct Content-Length, body one byte every 0.5 s; stops when the
                                 client disconnects.
  GET  /stall/<key>/<relpath>    200, correct Content-Length, first half of the body, then 20 s of silence,
                                 then the connection is closed (rest never sent).
  GET  /truncated/<key>/<relpath>        Content-Length = real length + 1000, real body, then close (always).
  GET  /truncated-once/<key>/<relpath>   truncated like above for the 1st request of the key, full afterwards.
  GET  /gzipbomb                 200, Content-Encoding: gzip, Content-Type text/csv, body = gzip (level 9) of
                                 200 MiB of zero bytes (~200 KB, built lazily once), Content-Length of that.
  GET  /html200/<key>            200, Content-Type: text/html, an HTML "Service Unavailable" error page.
  GET  /redirect/<key>?to=<url-encoded absolute url>   302, Location: <url> (400 if `to` is missing).
  GET  /redirect-loop/<key>/<n>  302, Location: /redirect-loop/<key>/<n+1> (relative), forever.
  GET  /headers/<key>            200 JSON object of the received request headers (lower-case names).
                                 Also served on B — the ONLY endpoint on B; everything else on B -> 404.
World Bank API v2 (data pages from <repo>/data/sample/worldbank/<CODE>_p<N>.json)
  GET  /wb/<mode>[/<key>]/v2/country/<codes>/indicator/<CODE>?format=json&date=..&per_page=..&page=<p>
       page defaults to 1; format must be json (else 400 text); <codes> is not interpreted.
       The optional <key> segment (anything but "v2") only scopes the `flaky` counters.
       ok             the page file verbatim, Content-Type application/json;charset=utf-8, with an ETag
                      (sha256) and 304 for a matching If-None-Match;
                      missing file -> 404 JSON {"error": ...}.
       total-changes  like ok, but on page >= 2 the meta "total" is increased by 7 (type kept: the
                      FP.CPI.TOTL.ZG page 2 has it as a string).
       error          200 with the recorded error array (tests/data/http/worldbank/..._ListByCountryIDs__2.json).
       html400        400, Content-Type text/html, the recorded XHTML page (..._ListByCountryIDsAndSourceID__4.html).
       flaky          1st request for each (key, CODE, page) -> 503 (text), then like ok.
       slow           like ok after a 0.5 s delay (to observe concurrency via t / t_end in /_log).
       A non-integer page -> 200 with the recorded error array (like the real API's invalid-value answer).
Qualtrics v3 export-responses (fixtures tests/data/http/qualtrics/)
  All need header X-API-TOKEN: test-token, else 401 JSON
  {"meta":{"httpStatus":"401 - Unauthorized","error":{"errorMessage":"..."}}}. A trailing "/" is accepted.
  POST /qualtrics/API/v3/surveys/<SID>/export-responses   Content-Type must be application/json and the body a
       JSON object with "format":"csv" (else 400 JSON in the same meta/error shape) -> 200 with
       01_start_export_response.json (progressId ES_3UxfDrHcrySC1Aq). Resets the poll counter of <SID>.
  GET  /qualtrics/API/v3/surveys/<SID>/export-responses/<progressId>   <progressId> must be the fixture's
       (else 404 JSON). Polls 1-2 (per SID) -> 02_progress_inProgress.json, poll 3+ -> 03_progress_complete.json
       (fileId 19fd6c27-d2ec-46ff-8dd3-f4efb700db38-def). SID "SV_failing": poll 3+ ->
       {"result":{"percentComplete":30.0,"status":"failed"},"meta":{"httpStatus":"200 - OK","requestId":"x"}}.
  GET  /qualtrics/API/v3/surveys/<SID>/export-responses/<fileId>/file   <fileId> must be the fixture's (else
       404 JSON) -> 200 application/zip with Content-Disposition attachment: export_file_download.zip;
       SID "SV_zipslip": an in-memory zip with members "../../evil.csv" and "Survey.csv";
       SID "SV_bigzip": an in-memory zip with one deflated member "Big Survey.csv" that inflates to exactly
       300 MiB of a repeated CSV line (built lazily once, ~0.75 MB compressed).
LimeSurvey RemoteControl 2 (fixtures tests/data/http/limesurvey/)
  POST /limesurvey/index.php/admin/remotecontrol   Content-Type must contain application/json (else 400 text);
       body {"method":..., "params":[...], "id":N}; the reply echoes id (fixture bytes are sent verbatim when id==1).
       get_session_key ["user","secret"]   -> {"id":N,"result":"sessionkey123","error":null}
                       other credentials   -> result {"status":"Invalid user name or password"}
       export_responses [key, sid, "csv", ...]  key must be "sessionkey123" else result {"status":"Invalid session key"};
                       sid 123456 (int or string) -> jsonrpc_response_export_responses.json (result = base64 CSV);
                       sid 999 -> jsonrpc_response_no_data.json; other sid -> {"status":"Error: Invalid survey ID"};
                       document type other than csv -> {"status":"fault_server: only csv is served"}.
       release_session_key [key]  -> {"id":N,"result":"OK","error":null} (the key stays valid).
       unknown method -> {"id":N,"result":null,"error":"Method not found"}; unparsable body -> error "Parse error".
       The method name is recorded as rpc_method in /_log.
IMF DataMapper (fixture tests/data/http/imf/NGDP_RPCH.json, SYNTHETIC values)
  GET  /imf/api/v1/<IND>[/<ISO3>...]   NGDP_RPCH -> the whole fixture (all countries, as the real API does);
       unknown indicator, or a country segment that is not 3 upper-case letters/digits ->
       {"api":{"version":"1","output-method":"json"}}. Query strings (?periods=) are ignored.
Anything else -> 404 (text). A known path with the wrong method -> 405 with Allow. HEAD -> 404 without body.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import io
import json
import math
import os
import posixpath
import re
import select
import socket
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BIND_HOST = "127.0.0.1"
LIFETIME_S = 300.0
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
MAX_REQUEST_BODY = 64 * 1024 * 1024
MAX_LOGGED_BODY = 1024 * 1024
FIX = "tests/data/http"

QUALTRICS_TOKEN = "test-token"
LS_USER, LS_PASSWORD, LS_SESSION_KEY = "user", "secret", "sessionkey123"

CONTENT_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".html": "text/html",
    ".xml": "application/xml",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".parquet": "application/vnd.apache.parquet",
    ".sav": "application/x-spss-sav",
    ".xls": "application/vnd.ms-excel",
}

HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>Service Unavailable</title>"
    b'<meta charset="utf-8"></head><body><h1>Service Unavailable</h1>'
    b"<p>The server is temporarily unable to service your request due to maintenance downtime or "
    b"capacity problems. Please try again later.</p><hr><address>fault_server</address></body></html>\n"
)


class State:
    """Shared, lock-protected state: request log, counters, lazily built payloads."""

    def __init__(self, repo: Path, verbose: bool):
        self.repo = repo
        self.repo_resolved = repo.resolve()
        self.verbose = verbose
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.counters: dict[tuple, int] = {}
        self.build_lock = threading.Lock()
        self.cache: dict[str, bytes] = {}
        self.ports: dict[str, int] = {}

    def bump(self, *key) -> int:
        with self.lock:
            n = self.counters.get(key, 0) + 1
            self.counters[key] = n
            return n

    def set_counter(self, value: int, *key) -> None:
        with self.lock:
            self.counters[key] = value

    def record(self, entry: dict) -> None:
        with self.lock:
            self.log.append(entry)

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.counters.clear()

    def snapshot(self, needle: str | None) -> list[dict]:
        with self.lock:
            return [
                {k: (dict(v) if isinstance(v, dict) else v) for k, v in e.items()}
                for e in self.log
                if needle is None or needle in e["path"]
            ]

    def fixture(self, rel: str) -> bytes:
        with self.build_lock:
            if rel not in self.cache:
                self.cache[rel] = (self.repo / rel).read_bytes()
            return self.cache[rel]

    def built(self, name: str, builder) -> bytes:
        with self.build_lock:
            if name not in self.cache:
                self.cache[name] = builder()
            return self.cache[name]


# ---------------------------------------------------------------- payload builders


def build_gzip_bomb() -> bytes:
    """gzip (level 9) of 200 MiB of zero bytes, built in 1 MiB steps."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31 = gzip container, mtime 0
    zeros = bytes(1 << 20)
    out = io.BytesIO()
    for _ in range(200):
        out.write(co.compress(zeros))
    out.write(co.flush())
    return out.getvalue()


def build_zipslip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        evil = zipfile.ZipInfo("../../evil.csv", date_time=(2025, 1, 1, 0, 0, 0))
        evil.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(evil, b"ResponseId,Q1\r\nR_evil,written outside the target directory\r\n")
        good = zipfile.ZipInfo("Survey.csv", date_time=(2025, 1, 1, 0, 0, 0))
        good.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(
            good,
            b"StartDate,EndDate,ResponseId,Q1\r\n"
            b"Start Date,End Date,Response ID,Do you like tests?\r\n"
            b'"{""ImportId"":""startDate"",""timeZone"":""America/Denver""}",'
            b'"{""ImportId"":""endDate"",""timeZone"":""America/Denver""}",'
            b'"{""ImportId"":""_recordId""}","{""ImportId"":""QID1""}"\r\n'
            b"2025-01-01 10:00:00,2025-01-01 10:01:00,R_zipslip0001,Yes\r\n",
        )
    return buf.getvalue()


BIGZIP_HEADER = b"ResponseId,Q1,Q2,Q3,Q4,Q5,Q6_1\r\n"  # 32 bytes
BIGZIP_LINE = b"R_00000000000000,1,2,3,4,5,yes\r\n"  # 32 bytes
BIGZIP_SIZE = 300 * 1024 * 1024


def build_bigzip() -> bytes:
    """One deflated member inflating to exactly 300 MiB; streamed into a BytesIO in 1 MiB blocks."""
    assert len(BIGZIP_LINE) == 32 and len(BIGZIP_HEADER) == 32
    block = BIGZIP_LINE * (1 << 15)  # 1 MiB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("Big Survey.csv", date_time=(2025, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as member:
            member.write(BIGZIP_HEADER + BIGZIP_LINE * ((1 << 15) - 1))
            for _ in range(BIGZIP_SIZE // len(block) - 1):
                member.write(block)
    return buf.getvalue()


# ---------------------------------------------------------------- HTTP plumbing


class LoopbackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128  # tests open many connections at once

    def __init__(self, state: State, origin: str):
        self.state = state
        self.origin = origin
        super().__init__((BIND_HOST, 0), Handler)

    def server_bind(self):
        # HTTPServer.server_bind would call socket.getfqdn() (a reverse-DNS lookup); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        if host != BIND_HOST:
            raise RuntimeError(f"refusing to serve on {host!r}")
        self.server_name = BIND_HOST
        self.server_port = port

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)) and not self.state.verbose:
            return
        super().handle_error(request, client_address)


class BadRequestBody(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault_server/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections and slow clients

    # ------------------------------------------------------------ framework hooks

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.state.verbose:
            sys.stderr.write(f"[{self.server.origin}] {self.address_string()} {format % args}\n")
            sys.stderr.flush()

    def send_response(self, code, message=None):
        if getattr(self, "entry", None) is not None and self.entry["status"] is None:
            self.entry["status"] = code
        super().send_response(code, message)

    def send_header(self, keyword, value):
        if getattr(self, "entry", None) is not None:
            with self.server.state.lock:
                rh, k = self.entry["response_headers"], keyword.lower()
                rh[k] = f"{rh[k]}, {value}" if k in rh else str(value)
        super().send_header(keyword, value)

    # ------------------------------------------------------------ helpers

    @property
    def st(self) -> State:
        return self.server.state

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BadRequestBody("eof in chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequestBody("bad chunk size") from None
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out)
                if len(out) + size > MAX_REQUEST_BODY:
                    raise BadRequestBody("request body too large")
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        cl = self.headers.get("Content-Length")
        if not cl:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise BadRequestBody("bad Content-Length") from None
        if n < 0 or n > MAX_REQUEST_BODY:
            raise BadRequestBody("request body too large")
        return self.rfile.read(n)

    def _headers_dict(self) -> dict:
        d: dict[str, str] = {}
        for k, v in self.headers.items():
            k = k.lower()
            d[k] = f"{d[k]}, {v}" if k in d else v
        return d

    def _send(self, status: int, body: bytes = b"", ctype: str | None = "text/plain; charset=utf-8",
              headers: list[tuple[str, str]] | tuple = (), close: bool = False) -> None:
        no_body = status in (204, 304) or status < 200
        self.send_response(status)
        if ctype and not no_body:
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        if not no_body:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, status: int, text: str, headers=(), close=False) -> None:
        self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8", headers, close)

    def _json(self, status: int, obj, headers=(), ctype="application/json") -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), ctype, headers)

    def _not_found(self, why: str = "not found") -> None:
        self._text(404, f"404 {why}: {self.command} {self.path}")

    def _method_not_allowed(self, allow: str) -> None:
        self._text(405, f"405 method {self.command} not allowed here", headers=[("Allow", allow)])

    def _repo_file(self, rel: str) -> Path | None:
        rel = urllib.parse.unquote(rel)
        if not rel or "\x00" in rel or rel.startswith("/") or "\\" in rel:
            return None
        norm = posixpath.normpath(rel)
        if norm.startswith("..") or norm.startswith("/") or norm == ".":
            return None
        p = self.st.repo / norm
        try:
            resolved = p.resolve()
        except OSError:
            return None
        if not resolved.is_relative_to(self.st.repo_resolved) or not resolved.is_file():
            return None
        return p

    @staticmethod
    def _ctype(path: Path) -> str:
        return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")

    def _file_headers(self, path: Path, data: bytes) -> list[tuple[str, str]]:
        return [("ETag", f'"{hashlib.sha256(data).hexdigest()}"'), ("Last-Modified", LAST_MODIFIED)]

    def _serve_file(self, path: Path) -> None:
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tags = [t.strip() for t in inm.split(",")]
            tags = [t[2:] if t.startswith("W/") else t for t in tags]
            if etag in tags or "*" in tags:
                self._send(304, b"", None, [("ETag", etag), ("Last-Modified", LAST_MODIFIED)])
                return
        self._send(200, data, self._ctype(path), self._file_headers(path, data))

    def _client_gone(self, secs: float) -> bool:
        """Wait `secs`; True as soon as the peer has closed its side (EOF/reset)."""
        end = time.monotonic() + secs
        while True:
            rem = end - time.monotonic()
            if rem <= 0:
                return False
            try:
                r, _, _ = select.select([self.connection], [], [], rem)
            except (OSError, ValueError):
                return True
            if not r:
                return False
            try:
                peek = self.connection.recv(1, socket.MSG_PEEK)
            except (OSError, socket.timeout):
                return True
            if not peek:
                return True
            time.sleep(max(0.0, end - time.monotonic()))  # pipelined bytes: keep waiting
            return False

    # ------------------------------------------------------------ dispatch

    def _dispatch(self) -> None:
        self.entry = None
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except BadRequestBody as e:
            self._text(400 if "too large" not in str(e) else 413, str(e), close=True)
            return
        origin = self.server.origin

        if origin == "A" and path in ("/_log", "/_reset"):
            if self.command != "GET":
                self._method_not_allowed("GET")
            elif path == "/_reset":
                self.st.reset()
                self._json(200, {"ok": True})
            else:
                self._json(200, self.st.snapshot(query["key"][0] if "key" in query else None))
            return

        body_text = None
        if len(body) <= MAX_LOGGED_BODY:
            try:
                body_text = body.decode("utf-8")
            except UnicodeDecodeError:
                body_text = None
        self.entry = {
            "origin": origin,
            "port": self.server.server_port,
            "method": self.command,
            "path": self.path,
            "headers": self._headers_dict(),
            "t": time.monotonic(),
            "t_end": None,
            "body_len": len(body),
            "body": body_text,
            "status": None,
            "response_headers": {},
            "rpc_method": None,
        }
        self.st.record(self.entry)
        try:
            if self.command == "HEAD":
                self._not_found("HEAD is not served")
            elif origin == "B":
                self._route_b(path)
            else:
                self._route_a(path, query, body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except Exception:  # noqa: BLE001 — report and keep serving
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            self.close_connection = True
            if self.entry["status"] is None:
                try:
                    self._text(500, "fault_server internal error", close=True)
                except OSError:
                    pass
        finally:
            self.entry["t_end"] = time.monotonic()
            self.entry = None

    def _route_b(self, path: str) -> None:
        parts = path.split("/")[1:]
        if len(parts) == 2 and parts[0] == "headers" and parts[1]:
            if self.command != "GET":
                return self._method_not_allowed("GET")
            return self._json(200, self._headers_dict())
        self._not_found("origin B serves only /headers/<key>")

    def _route_a(self, path: str, query: dict, body: bytes) -> None:
        parts = path.split("/")[1:]
        head = parts[0] if parts else ""

        if head == "qualtrics":
            return self._qualtrics(parts[1:], body)
        if head == "limesurvey":
            if parts[1:] != ["index.php", "admin", "remotecontrol"]:
                return self._not_found()
            if self.command != "POST":
                return self._method_not_allowed("POST")
            return self._limesurvey(body)

        route = GET_ROUTES.get(head)
        if route is None:
            return self._not_found()
        if self.command != "GET":
            return self._method_not_allowed("GET")
        return route(self, parts[1:], query)

    # ------------------------------------------------------------ generic fault routes

    def r_ok(self, args, query):
        p = self._repo_file("/".join(args))
        if p is None:
            return self._not_found("no such file under --repo")
        self._serve_file(p)

    def _flaky(self, args, status):
        if len(args) < 3 or not args[0]:
            return self._not_found()
        key, n = args[0], args[1]
        try:
            n = int(n)
        except ValueError:
            return self._not_found("n must be an integer")
        p = self._repo_file("/".join(args[2:]))
        if p is None:
            return self._not_found("no such file under --repo")
        if self.st.bump(f"flaky{status}", key) <= n:
            return self._text(status, f"{status} injected failure (flaky, key {key})")
        self._serve_file(p)

    def r_flaky(self, args, query):
        self._flaky(args, 500)

    def r_flaky503(self, args, query):
        self._flaky(args, 503)

    def r_flaky502(self, args, query):
        self._flaky(args, 502)

    def r_always500(self, args, query):
        if len(args) != 1 or not args[0]:
            return self._not_found()
        self._text(503, "503 Service Unavailable (always)", headers=[("Retry-After", "0")])

    def r_status(self, args, query):
        if len(args) != 2 or not args[1]:
            return self._not_found()
        try:
            code = int(args[0])
        except ValueError:
            return self._not_found("code must be an integer")
        if not 200 <= code <= 599:
            return self._not_found("code must be 200..599")
        headers = [("WWW-Authenticate", 'Bearer realm="fault_server"')] if code == 401 else []
        self._text(code, f"{code} injected status (key {args[1]})", headers=headers)

    def _ratelimit(self, args, retry_after):
        if len(args) < 2 or not args[0]:
            return self._not_found()
        p = self._repo_file("/".join(args[1:]))
        if p is None:
            return self._not_found("no such file under --repo")
        if self.st.bump("ratelimit" + ("-date" if retry_after is None else ""), args[0]) == 1:
            if retry_after is None:
                retry_after = email.utils.formatdate(math.ceil(time.time()) + 2, usegmt=True)
            return self._text(429, "429 Too Many Requests", headers=[("Retry-After", retry_after)])
        self._serve_file(p)

    def r_ratelimit(self, args, query):
        self._ratelimit(args, "1")

    def r_ratelimit_date(self, args, query):
        self._ratelimit(args, None)

    def r_ratelimit_long(self, args, query):
        if len(args) != 1 or not args[0]:
            return self._not_found()
        self._text(429, "429 Too Many Requests (long)", headers=[("Retry-After", "3600")])

    def _file_arg(self, args):
        if len(args) < 2 or not args[0]:
            return None
        return self._repo_file("/".join(args[1:]))

    def _start_body(self, p: Path, data: bytes, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", self._ctype(p))
        for k, v in self._file_headers(p, data):
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def r_drip(self, args, query):
        p = self._file_arg(args)
        if p is None:
            return self._not_found()
        data = p.read_bytes()
        self._start_body(p, data, len(data))
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            if i + 1 < len(data) and self._client_gone(0.5):
                self.close_connection = True
                return

    def r_stall(self, args, query):
        p = self._file_arg(args)
        if p is None:
            return self._not_found()
        data = p.read_bytes()
        self._start_body(p, data, len(data))
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True
        self._client_gone(20.0)

    def _truncated(self, p: Path) -> None:
        data = p.read_bytes()
        self._start_body(p, data, len(data) + 1000)
        self.wfile.write(data)
        self.close_connection = True

    def r_truncated(self, args, query):
        p = self._file_arg(args)
        if p is None:
            return self._not_found()
        self._truncated(p)

    def r_truncated_once(self, args, query):
        p = self._file_arg(args)
        if p is None:
            return self._not_found()
        if self.st.bump("truncated-once", args[0]) == 1:
            return self._truncated(p)
        self._serve_file(p)

    def r_gzipbomb(self, args, query):
        if args:
            return self._not_found()
        bomb = self.st.built("gzipbomb", build_gzip_bomb)
        self._send(200, bomb, "text/csv", [("Content-Encoding", "gzip")])

    def r_html200(self, args, query):
        if len(args) != 1 or not args[0]:
            return self._not_found()
        self._send(200, HTML_ERROR_PAGE, "text/html")

    def r_redirect(self, args, query):
        if len(args) != 1 or not args[0]:
            return self._not_found()
        if "to" not in query or not query["to"][0]:
            return self._text(400, "400 missing ?to=<url-encoded absolute url>")
        to = query["to"][0]
        if any(c in to for c in "\r\n"):
            return self._text(400, "400 bad ?to=")
        self._text(302, f"302 Found: {to}", headers=[("Location", to)])

    def r_redirect_loop(self, args, query):
        if len(args) != 2 or not args[0]:
            return self._not_found()
        try:
            n = int(args[1])
        except ValueError:
            return self._not_found("n must be an integer")
        loc = f"/redirect-loop/{args[0]}/{n + 1}"
        self._text(302, f"302 Found: {loc}", headers=[("Location", loc)])

    def r_headers(self, args, query):
        if len(args) != 1 or not args[0]:
            return self._not_found()
        self._json(200, self._headers_dict())

    # ------------------------------------------------------------ World Bank

    WB_JSON = "application/json;charset=utf-8"

    def r_wb(self, args, query):
        if args and args[-1] == "":
            args = args[:-1]
        if not args:
            return self._not_found()
        mode, rest, key = args[0], args[1:], ""
        if rest and rest[0] != "v2":
            key, rest = rest[0], rest[1:]
        if len(rest) != 5 or rest[0] != "v2" or rest[1] != "country" or rest[3] != "indicator" or not rest[2]:
            return self._not_found("expected /wb/<mode>[/<key>]/v2/country/<codes>/indicator/<CODE>")
        code = rest[4]
        if mode not in ("ok", "total-changes", "error", "html400", "flaky", "slow"):
            return self._not_found(f"unknown wb mode {mode!r}")
        if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", code):
            return self._not_found("bad indicator code")
        fmt = query.get("format", [""])[0]
        if fmt.lower() != "json":
            return self._text(400, "400 fault_server serves only format=json (the real API would answer XML)")
        error_array = self.st.fixture(f"{FIX}/worldbank/TestIndicatorValuesService_ListByCountryIDs__2.json")
        if mode == "error":
            return self._send(200, error_array, self.WB_JSON)
        if mode == "html400":
            html = self.st.fixture(f"{FIX}/worldbank/TestIndicatorValuesService_ListByCountryIDsAndSourceID__4.html")
            return self._send(400, html, "text/html")
        try:
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            return self._send(200, error_array, self.WB_JSON)
        if mode == "flaky" and self.st.bump("wb-flaky", key, code, page) == 1:
            return self._text(503, "503 Service Unavailable (wb flaky)")
        if mode == "slow":
            time.sleep(0.5)
        f = self.st.repo / "data" / "sample" / "worldbank" / f"{code}_p{page}.json"
        if page < 1 or not f.is_file():
            return self._json(404, {"error": f"no fixture data/sample/worldbank/{code}_p{page}.json"},
                              ctype=self.WB_JSON)
        data = f.read_bytes()
        if mode == "total-changes" and page >= 2:
            data = bump_wb_total(data, 7)
        if mode == "ok":
            # Validators like a caching front end would send, so conditional GETs can be tested.
            etag = f'"{hashlib.sha256(data).hexdigest()}"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", None, [("ETag", etag)])
            return self._send(200, data, self.WB_JSON, [("ETag", etag)])
        self._send(200, data, self.WB_JSON)

    # ------------------------------------------------------------ Qualtrics

    def _q_error(self, status: int, reason: str, message: str, code: str) -> None:
        self._json(status, {"meta": {"httpStatus": f"{status} - {reason}",
                                     "error": {"errorMessage": message, "errorCode": code},
                                     "requestId": "fault-server"}})

    def _qualtrics(self, parts: list[str], body: bytes) -> None:
        if parts and parts[-1] == "":
            parts = parts[:-1]
        if len(parts) < 5 or parts[:3] != ["API", "v3", "surveys"] or parts[4] != "export-responses" or not parts[3]:
            return self._not_found()
        if self.headers.get("X-API-TOKEN") != QUALTRICS_TOKEN:
            return self._json(401, {"meta": {"httpStatus": "401 - Unauthorized",
                                             "error": {"errorMessage": "Invalid or missing X-API-TOKEN header."}}})
        sid, rest = parts[3], parts[5:]
        start = json.loads(self.st.fixture(f"{FIX}/qualtrics/01_start_export_response.json"))
        complete_raw = self.st.fixture(f"{FIX}/qualtrics/03_progress_complete.json")
        progress_id = start["result"]["progressId"]
        file_id = json.loads(complete_raw)["result"]["fileId"]

        if not rest:
            if self.command != "POST":
                return self._method_not_allowed("POST")
            if "application/json" not in (self.headers.get("Content-Type") or "").lower():
                return self._q_error(400, "Bad Request", "Content-Type must be application/json.", "RP_0.1")
            try:
                req = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                return self._q_error(400, "Bad Request", "Request body is not valid JSON.", "RP_0.1")
            if not isinstance(req, dict) or req.get("format") != "csv":
                return self._q_error(400, "Bad Request", 'fault_server expects "format":"csv".', "RP_0.2")
            self.st.set_counter(0, "qualtrics-poll", sid)
            return self._send(200, self.st.fixture(f"{FIX}/qualtrics/01_start_export_response.json"),
                              "application/json")

        if self.command != "GET":
            return self._method_not_allowed("GET")
        if len(rest) == 1:
            if rest[0] != progress_id:
                return self._q_error(404, "Not Found", f"Unknown progressId {rest[0]}.", "RP_0.3")
            n = self.st.bump("qualtrics-poll", sid)
            if n <= 2:
                return self._send(200, self.st.fixture(f"{FIX}/qualtrics/02_progress_inProgress.json"),
                                  "application/json")
            if sid == "SV_failing":
                return self._json(200, {"result": {"percentComplete": 30.0, "status": "failed"},
                                        "meta": {"httpStatus": "200 - OK", "requestId": "x"}})
            return self._send(200, complete_raw, "application/json")
        if len(rest) == 2 and rest[1] == "file":
            if rest[0] != file_id:
                return self._q_error(404, "Not Found", f"Unknown fileId {rest[0]}.", "RP_0.4")
            if sid == "SV_zipslip":
                data, name = self.st.built("zipslip", build_zipslip), "Survey.zip"
            elif sid == "SV_bigzip":
                data, name = self.st.built("bigzip", build_bigzip), "Big+Survey.zip"
            else:
                data, name = self.st.fixture(f"{FIX}/qualtrics/export_file_download.zip"), "Beskar+Armor.zip"
            return self._send(200, data, "application/zip",
                              [("Content-Disposition", f"attachment; filename={name}")])
        return self._not_found()

    # ------------------------------------------------------------ LimeSurvey

    def _limesurvey(self, body: bytes) -> None:
        if "application/json" not in (self.headers.get("Content-Type") or "").lower():
            return self._text(400, "400 LimeSurvey RemoteControl expects Content-Type: application/json")
        ctype = "application/json"
        try:
            req = json.loads(body.decode("utf-8"))
            if not isinstance(req, dict) or not isinstance(req.get("method"), str):
                raise ValueError
        except (UnicodeDecodeError, ValueError):
            return self._json(200, {"id": None, "result": None, "error": "Parse error"}, ctype=ctype)
        rid = req.get("id")
        method = req["method"]
        params = req.get("params") or []
        if not isinstance(params, list):
            params = []
        self.entry["rpc_method"] = method

        def reply(result, error=None):
            self._json(200, {"id": rid, "result": result, "error": error}, ctype=ctype)

        def reply_fixture(rel):
            raw = self.st.fixture(rel)
            if rid == 1 and type(rid) is int:
                return self._send(200, raw, ctype)
            obj = json.loads(raw)
            obj["id"] = rid
            self._json(200, obj, ctype=ctype)

        if method == "get_session_key":
            if len(params) >= 2 and params[0] == LS_USER and params[1] == LS_PASSWORD:
                return reply(LS_SESSION_KEY)
            return reply({"status": "Invalid user name or password"})
        if method == "release_session_key":
            return reply("OK")
        if method == "export_responses":
            if not params or params[0] != LS_SESSION_KEY:
                return reply({"status": "Invalid session key"})
            sid = str(params[1]) if len(params) > 1 else ""
            doc = params[2] if len(params) > 2 else None
            if doc != "csv":
                return reply({"status": "fault_server: only csv is served"})
            if sid == "123456":
                return reply_fixture(f"{FIX}/limesurvey/jsonrpc_response_export_responses.json")
            if sid == "999":
                return reply_fixture(f"{FIX}/limesurvey/jsonrpc_response_no_data.json")
            return reply({"status": "Error: Invalid survey ID"})
        return reply(None, "Method not found")

    # ------------------------------------------------------------ IMF

    IMF_EMPTY = {"api": {"version": "1", "output-method": "json"}}

    def r_imf(self, args, query):
        if args and args[-1] == "":
            args = args[:-1]
        if len(args) < 3 or args[:2] != ["api", "v1"] or not args[2]:
            return self._not_found()
        ind, countries = args[2], args[3:]
        if ind != "NGDP_RPCH" or any(not re.fullmatch(r"[A-Z0-9]{3}", c) for c in countries):
            return self._json(200, self.IMF_EMPTY)
        self._send(200, self.st.fixture(f"{FIX}/imf/NGDP_RPCH.json"), "application/json")


def bump_wb_total(data: bytes, delta: int) -> bytes:
    """Increase meta "total" (the first one, inside element 0) by delta, keeping number-vs-string."""
    text = data.decode("utf-8")
    meta_end = text.find("}")
    m = re.compile(r'"total":(")?(\d+)(")?').search(text, 0, meta_end)
    if m is None:
        return data
    q = m.group(1) or ""
    new = f'"total":{q}{int(m.group(2)) + delta}{m.group(3) or ""}'
    return (text[: m.start()] + new + text[m.end():]).encode("utf-8")


GET_ROUTES = {
    "ok": Handler.r_ok,
    "flaky": Handler.r_flaky,
    "flaky503": Handler.r_flaky503,
    "flaky502": Handler.r_flaky502,
    "always500": Handler.r_always500,
    "status": Handler.r_status,
    "ratelimit": Handler.r_ratelimit,
    "ratelimit-date": Handler.r_ratelimit_date,
    "ratelimit-long": Handler.r_ratelimit_long,
    "drip": Handler.r_drip,
    "stall": Handler.r_stall,
    "truncated": Handler.r_truncated,
    "truncated-once": Handler.r_truncated_once,
    "gzipbomb": Handler.r_gzipbomb,
    "html200": Handler.r_html200,
    "redirect": Handler.r_redirect,
    "redirect-loop": Handler.r_redirect_loop,
    "headers": Handler.r_headers,
    "wb": Handler.r_wb,
    "imf": Handler.r_imf,
}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repo", required=True, help="repository root; fixture paths are relative to it")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    args = ap.parse_args(argv)
    repo = Path(args.repo).absolute()
    if not (repo / FIX).is_dir():
        sys.stderr.write(f"fault_server: {repo / FIX} not found (is --repo the repository root?)\n")
        return 2

    state = State(repo, args.verbose)
    server_a = LoopbackServer(state, "A")
    server_b = LoopbackServer(state, "B")
    state.ports = {"A": server_a.server_port, "B": server_b.server_port}
    for srv in (server_a, server_b):
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    sys.stdout.write(f"PORTS {server_a.server_port} {server_b.server_port}\n")
    sys.stdout.flush()

    stop = threading.Event()

    def watch_stdin():
        try:
            while sys.stdin.buffer.read1(65536):
                pass
        except (OSError, ValueError, AttributeError):  # AttributeError: sys.stdin is None (fd 0 closed)
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait(LIFETIME_S)
    if args.verbose:
        sys.stderr.write("fault_server: exiting\n")
    sys.stderr.flush()
    # Daemon handler threads may be sleeping (drip/stall); do not wait for them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

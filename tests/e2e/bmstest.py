"""
Shared helpers for the bms end-to-end tests: start a real `bms serve` on
127.0.0.1 with a fresh data folder, talk to it over HTTP with keep-alive,
stop it by PID and read the request records it wrote.

Environment:
    BMS_BIN               the bms binary (default build/bms)
    BMS_MODEL_REPOSITORY  the model repository (default models/)
"""

import gzip
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BMS_BIN = os.environ.get("BMS_BIN", os.path.join(ROOT, "build", "bms"))
MODELS = os.environ.get("BMS_MODEL_REPOSITORY", os.path.join(ROOT, "models"))
FMNIST = "/usr/share/datasets/fashion-mnist"
HOST = "127.0.0.1"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

_PORT_RE = re.compile(r"\bport=(\d+)")


class ServerError(Exception):
    """The server did not start or did not stop as it should."""


class Server:
    """One `bms serve` process with its own temporary data folder."""

    def __init__(self, repository=None, extra_args=(), threads=None):
        self.repository = repository or MODELS
        self.extra_args = list(extra_args)
        self.threads = threads
        self.data_dir = None
        self.proc = None
        self.port = None
        self.log_lines = []
        self.returncode = None
        self.killed = False
        self._listening = threading.Event()
        self._reader = None

    def start(self):
        """Start the server and wait for its listening line."""
        if not os.access(BMS_BIN, os.X_OK):
            raise ServerError("no bms binary at %s (run make)" % BMS_BIN)
        self.data_dir = tempfile.mkdtemp(prefix="bms-e2e-data-")
        argv = [BMS_BIN, "serve", "--model-repository", self.repository,
                "--http-port", "0", "--http-address", HOST,
                "--data-dir", self.data_dir]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        argv += self.extra_args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return self
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise ServerError("bms serve exited with %d before listening:"
                                  "\n%s" % (self.proc.returncode, self.log()))
        self.kill()
        raise ServerError("no listening line within %.0f s:\n%s"
                          % (START_TIMEOUT_S, self.log()))

    def _read_log(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log_lines.append(line)
            if not self._listening.is_set() and 'msg="listening"' in line:
                m = _PORT_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._listening.set()

    def log(self, last=40):
        return "\n".join(self.log_lines[-last:])

    def send_signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=STOP_TIMEOUT_S):
        """Wait for the exit; SIGKILL it after timeout.  Returns rc."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.killed = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.returncode = self.proc.wait()
        if self._reader:
            self._reader.join(2)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Signal the server and wait; raise unless it exited 0 by itself."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        rc = self.wait(timeout)
        if self.killed:
            raise ServerError("bms serve ignored signal %d for %.0f s and was "
                              "killed:\n%s" % (sig, timeout, self.log()))
        if rc != 0:
            raise ServerError("bms serve exited with %d after signal %d:\n%s"
                              % (rc, sig, self.log()))
        return rc

    def kill(self):
        """Make sure the process is gone (cleanup path, no checks)."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.killed = True

    def cleanup(self):
        self.kill()
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def db_path(self):
        return os.path.join(self.data_dir, "bms.db")

    def records(self):
        """Every request record, as dicts, in seq order."""
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path(), uri=True)
        try:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT * FROM requests ORDER BY seq")
            return [dict(r) for r in rows]
        finally:
            con.close()

    def client(self, timeout=60.0, ssl_context=None):
        """A client of this server; with ssl_context it speaks HTTPS."""
        return Client(self.port, timeout, ssl_context=ssl_context)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def request_id(self):
        return self.header("X-Request-Id")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        text = self.body[:300].decode("utf-8", "replace")
        return "<%d %s>" % (self.status, text)


class Client:
    """One keep-alive HTTP/1.1 connection; reopens after a server close."""

    IDLE_REOPEN_S = 5.0

    def __init__(self, port, timeout=60.0, ssl_context=None):
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context   # an ssl.SSLContext: HTTPS
        self.conn = None
        self.n_connects = 0
        self.last_use = 0.0

    def _connect(self):
        if self.ssl_context is not None:
            self.conn = http.client.HTTPSConnection(
                HOST, self.port, timeout=self.timeout,
                context=self.ssl_context)
        else:
            self.conn = http.client.HTTPConnection(HOST, self.port,
                                                   timeout=self.timeout)
        self.n_connects += 1

    def request(self, method, path, body=None, headers=None):
        """Send one request and read the whole answer.

        A connection the server closed earlier (it said so, or it was idle)
        is reopened first; a connection lost during this request raises.
        """
        # A connection idle for a while may be closed by the server's idle
        # timeout at any moment: start a new one rather than race it.
        if self.conn is not None and \
                time.monotonic() - self.last_use > self.IDLE_REOPEN_S:
            self.close()
        if self.conn is None:
            self._connect()
        hdrs = {"Content-Type": "application/json"} if body is not None \
            else {}
        if headers:
            hdrs.update(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        self.last_use = time.monotonic()
        out = Response(resp.status, resp.getheaders(), data)
        if resp.will_close:
            self.close()
        return out

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    def infer(self, model, body, version=None):
        path = "/v2/models/%s" % model
        if version is not None:
            path += "/versions/%s" % version
        return self.post(path + "/infer", body)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# --- raw sockets -------------------------------------------------------

def raw_connect(port, timeout=10.0):
    sock = socket.create_connection((HOST, port), timeout=timeout)
    return sock


def raw_read_response(sock, timeout=10.0):
    """Read one HTTP response from sock (head + Content-Length body).

    Returns (status, headers dict lower-cased, body) or None when the
    server closed without answering.
    """
    sock.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:length]
    except (ConnectionResetError, BrokenPipeError):
        return None


def raw_send_body_watching(sock, head, body, chunk=1 << 20, pause=0.0):
    """Send head then body in chunks, stopping as soon as the server
    answers (it may refuse a body early).  Returns True if all was sent."""
    sock.sendall(head)
    if pause:
        time.sleep(pause)
    sent = 0
    while sent < len(body):
        r, _, _ = select.select([sock], [], [], 0)
        if r:
            return False
        try:
            n = sock.send(body[sent:sent + chunk])
        except (BrokenPipeError, ConnectionResetError):
            return False
        sent += n
    return True


# --- data --------------------------------------------------------------

def _read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got_magic = struct.unpack(">I", data[:4])[0]
    if got_magic != magic:
        raise ValueError("%s: magic %d, expected %d" % (path, got_magic,
                                                         magic))
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count:
        raise ValueError("%s: %d bytes of data for dims %s"
                         % (path, len(data) - offset, dims))
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_test_images():
    """The 10,000 test images as uint8 [10000, 28, 28]."""
    return _read_idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"),
                     2051, 3)


def load_test_labels():
    return _read_idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"),
                     2049, 1)


# Each pixel v becomes float32(v) / 255 in float32 and is written as the
# shortest decimal that reads back as that same double, so the server's
# strtod and float cast give exactly the float32 PyTorch used.
PIXEL_TEXT = [repr(float(np.float32(v) / np.float32(255)))
              for v in range(256)]


def pixels(images):
    """float32 pixels of uint8 images, as PyTorch's tensor/255 gives."""
    return images.astype(np.float32) / np.float32(255)


def flat_data(images):
    return "[" + ",".join(PIXEL_TEXT[v] for v in images.ravel()) + "]"


def nested_data(images, shape):
    """images as a nested JSON array of the given shape (N first)."""
    arr = np.asarray(images).reshape(shape)

    def rec(a):
        if a.ndim == 1:
            return "[" + ",".join(PIXEL_TEXT[v] for v in a) + "]"
        return "[" + ",".join(rec(x) for x in a) + "]"

    return rec(arr)


def infer_body(images, item_shape, nested=False, req_id=None, outputs=None,
               input_name="image"):
    """A v2 infer body for uint8 images (N first) sent as FP32/255."""
    n = int(images.shape[0])
    shape = [n] + list(item_shape)
    data = nested_data(images, shape) if nested else flat_data(images)
    parts = ['{']
    if req_id is not None:
        parts.append('"id": %s, ' % json.dumps(req_id))
    parts.append('"inputs": [{"name": %s, "datatype": "FP32", "shape": %s, '
                 '"data": %s}]' % (json.dumps(input_name), json.dumps(shape),
                                   data))
    if outputs is not None:
        parts.append(', "outputs": %s' % json.dumps(outputs))
    parts.append('}')
    return "".join(parts).encode("ascii")


def model_config(name):
    with open(os.path.join(MODELS, name, "config.json")) as f:
        return json.load(f)


def model_reference(name):
    with open(os.path.join(MODELS, name, "reference.txt")) as f:
        return [int(line) for line in f if line.strip()]


def model_accuracy(name):
    with open(os.path.join(MODELS, name, "accuracy.txt")) as f:
        for line in f:
            if line.startswith("test_accuracy="):
                return float(line.split("=", 1)[1])
    raise ValueError("%s/accuracy.txt has no test_accuracy line" % name)


ITEM_SHAPE = {"fashion_mlp": [28, 28], "fashion_cnn": [1, 28, 28]}

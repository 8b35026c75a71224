"""
The gateway against an attacker's tries, on a real `bms serve` over a
temporary copy of models/ with keys: model names that would leave the
repository ("..", ".", ".hidden") on every route that takes one, in
plain and percent-encoded form; bodies the keys API and the config centre
must refuse (an allow-list naming "..", a NUL hidden in a name, a
misspelt member); two Authorization headers; unknown or repeated query
arguments; requests with a method a route does not take spending no
model rate-limit token; HEAD answered as GET without a body; and the
per-client connection cap.  After each try the server still answers and
the repository's parent folder is unchanged.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np

import bmstest


def run_keys(data_dir, *args):
    proc = subprocess.run([bmstest.BMS_BIN, "keys"] + list(args)
                          + ["--data-dir", data_dir],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)
    if proc.returncode != 0:
        raise AssertionError("bms keys %s: %s" % (args, proc.stderr))
    return proc.stdout.decode()


def token_of(output):
    for word in output.split():
        if word.startswith("bms_"):
            return word
    raise AssertionError("no token in %r" % output)


def listing(path):
    """Every file under path with its size, for before/after checks."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            out.append((os.path.relpath(p, path), os.path.getsize(p)))
    return out


def raw_request(port, head, timeout=10.0):
    """Send head (bytes, a whole request) on a new socket; return the
    status code, or None when the server closed without an answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(head)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
        return int(data.split(b" ", 2)[1])
    except (ConnectionResetError, socket.timeout):
        return None
    finally:
        sock.close()


class AttackTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.outer = tempfile.mkdtemp(prefix="bms-e2e-attack-")
        cls.repo_dir = os.path.join(cls.outer, "repo")
        cls.data_dir = os.path.join(cls.outer, "data")
        os.makedirs(cls.repo_dir)
        shutil.copytree(os.path.join(bmstest.MODELS, "fashion_mlp"),
                        os.path.join(cls.repo_dir, "fashion_mlp"))
        # A model-shaped folder beside the repository: what ".." reaches.
        shutil.copytree(os.path.join(bmstest.MODELS, "fashion_mlp"),
                        os.path.join(cls.outer, "1"))
        shutil.copy(os.path.join(bmstest.MODELS, "fashion_mlp",
                                 "config.json"), cls.outer)
        cls.admin = token_of(run_keys(cls.data_dir, "create", "--name",
                                      "root", "--role", "admin"))
        cls.user = token_of(run_keys(cls.data_dir, "create", "--name",
                                     "app", "--role", "user"))
        cls.server = bmstest.Server(repository=cls.repo_dir,
                                    extra_args=("--data-dir", cls.data_dir,
                                                "--max-connections-per-"
                                                "client", "12"))
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.outer, ignore_errors=True)
            raise
        cls.client = cls.server.client()
        cls.before = listing(cls.outer + "/1")

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.outer, ignore_errors=True)

    def call(self, method, path, body=None, token=None, headers=None):
        hdrs = dict(headers or {})
        hdrs["Authorization"] = "Bearer " + (token or self.admin)
        return self.client.request(method, path, body, hdrs)

    def assert_alive(self):
        r = self.client.request("GET", "/v2/health/live")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(listing(self.outer + "/1"), self.before)

    def test_dot_names_are_refused_on_every_route(self):
        package = open(os.path.join(bmstest.MODELS, "fashion_mlp", "1",
                                    "model.onnx"), "rb").read()
        routes = [
            ("GET", "/v2/models/%s", None),
            ("GET", "/v2/models/%s/ready", None),
            ("POST", "/v2/models/%s/infer", b"{}"),
            ("GET", "/v2/models/%s/versions/1", None),
            ("GET", "/v2/models/%s/routing", None),
            ("POST", "/v2/models/%s/stop", b""),
            ("POST", "/v2/repository/models/%s/load", b""),
            ("POST", "/v2/repository/models/%s/unload", b""),
            ("POST", "/v2/repository/models/%s/versions/1/unload", b""),
            ("GET", "/v2/repository/models/%s/package", None),
            ("PUT", "/v2/repository/models/%s/package", package),
            ("GET", "/api/models/%s/config", None),
            ("PUT", "/api/models/%s/config", b"{}"),
        ]
        for name in ("..", ".", ".hidden", "%2e%2e", "%2E."):
            for method, pattern, body in routes:
                r = self.call(method, pattern % name, body)
                self.assertEqual(r.status, 400, (method, pattern, name, r))
                self.assertIn("model name", r.json()["error"])
        self.assert_alive()

    def test_allow_list_names_are_checked(self):
        for models in ([".."], ["a/b"], [""], ["x" * 200]):
            r = self.call("POST", "/api/keys",
                          json.dumps({"name": "k", "role": "user",
                                      "models": models}))
            self.assertEqual(r.status, 400, (models, r))
            self.assertIn("models[0]", r.json()["error"])

    def test_key_names_with_hidden_bytes_are_refused(self):
        for name, what in (("a\u0000b", "\\u0000"), ("a\nb", "name:"),
                           ("a\tb", "name:")):
            r = self.call("POST", "/api/keys",
                          json.dumps({"name": name, "role": "user"}))
            self.assertEqual(r.status, 400, (name, r))
            self.assertIn(what, r.json()["error"])

    def test_misspelt_members_are_refused(self):
        r = self.call("PUT", "/api/models/fashion_mlp/config",
                      json.dumps({"rate_limits": {"requests_per_s": 1}}))
        self.assertEqual(r.status, 400, r)
        self.assertIn("unknown member 'rate_limits'", r.json()["error"])
        r = self.call("PUT", "/v2/models/fashion_mlp/routing",
                      json.dumps({"weights": {"1": 1}, "wieghts": {}}))
        self.assertEqual(r.status, 400, r)
        self.assertIn("unknown member 'wieghts'", r.json()["error"])

    def test_two_authorization_headers_are_refused(self):
        port = self.server.port
        for first, second in ((self.admin, "garbage"),
                              ("garbage", self.admin),
                              (self.admin, self.admin)):
            head = ("GET /v2 HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: Bearer %s\r\n"
                    "Authorization: Bearer %s\r\n"
                    "Connection: close\r\n\r\n" % (first, second))
            self.assertEqual(raw_request(port, head.encode()), 401)
        self.assert_alive()

    def test_unknown_or_repeated_query_arguments_are_400(self):
        for path, word in (("/api/audit?model=x", "model: unknown"),
                           ("/api/requests?limit=1&limit=2",
                            "limit: given more than once"),
                           ("/api/requests?modle=x", "modle: unknown")):
            r = self.call("GET", path)
            self.assertEqual(r.status, 400, (path, r))
            self.assertIn(word, r.json()["error"])
        r = self.call("GET", "/api/requests?offset=9223372036854775807")
        self.assertEqual(r.status, 400, r)
        self.assertIn("0..4611686018427387904", r.json()["error"])

    def test_wrong_methods_spend_no_model_token(self):
        r = self.call("PUT", "/api/models/fashion_mlp/config",
                      json.dumps({"rate_limit": {"requests_per_s": 0.01,
                                                 "burst": 1}}))
        self.assertEqual(r.status, 200, r)
        try:
            for method in ("GET", "HEAD", "OPTIONS", "DELETE"):
                r = self.call(method, "/v2/models/fashion_mlp/infer")
                self.assertEqual(r.status, 405, (method, r))
            body = bmstest.infer_body(np.zeros((1, 28, 28), np.uint8),
                                      bmstest.ITEM_SHAPE["fashion_mlp"])
            r = self.call("POST", "/v2/models/fashion_mlp/infer", body,
                          token=self.user)
            self.assertEqual(r.status, 200, r)
            r = self.call("POST", "/v2/models/fashion_mlp/infer", body,
                          token=self.user)
            self.assertEqual(r.status, 429, r)
        finally:
            r = self.call("PUT", "/api/models/fashion_mlp/config",
                          json.dumps({"rate_limit": None}))
            self.assertEqual(r.status, 200, r)

    def test_head_is_answered_as_get_without_a_body(self):
        r = self.client.request("HEAD", "/v2/health/live")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"")
        r = self.call("HEAD", "/v2/models/fashion_mlp", token=self.user)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"")
        r = self.client.request("HEAD", "/v2/models/fashion_mlp")
        self.assertEqual(r.status, 401, r)

    def test_one_client_cannot_take_every_connection(self):
        # The server runs with --max-connections-per-client 12: the
        # suite's own client holds one; eleven idle sockets fill the rest.
        held = []
        try:
            for _ in range(11):
                held.append(socket.create_connection(
                    ("127.0.0.1", self.server.port), timeout=10))
            time.sleep(0.3)
            self.assertIsNone(raw_request(
                self.server.port, b"GET /v2/health/live HTTP/1.1\r\n"
                b"Host: x\r\nConnection: close\r\n\r\n"))
        finally:
            for s in held:
                s.close()
        time.sleep(0.3)
        self.assert_alive()


if __name__ == "__main__":
    unittest.main()

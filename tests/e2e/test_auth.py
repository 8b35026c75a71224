"""
API keys, roles, allow-lists and rate limits over HTTP, against a real
`bms serve` on a temporary copy of models/ with a fresh data folder: every
refusal (401, 403, 429) with its headers, revocation through the API and
through `bms keys` (another process writing the same store), recovery
after a rate limit, a model's own limit, the open health routes, the token
shown once and never stored, and some attacker's tries (huge and odd
Authorization headers, the right key id with a wrong secret, an upload
without a key).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import numpy as np

import bmstest

RELOAD_WAIT_S = 2.5          # the contract: changes by `bms keys` within 2 s
TOKEN_RE = re.compile(r"^bms_[0-9a-f]{12}_[0-9a-f]{64}$")


def bearer(token):
    return {"Authorization": "Bearer " + token}


def zero_body(model):
    images = np.zeros((1, 28, 28), dtype=np.uint8)
    return bmstest.infer_body(images, bmstest.ITEM_SHAPE[model])


def run_cli(*args):
    proc = subprocess.run([bmstest.BMS_BIN, "keys"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=30)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


class _AuthCase(unittest.TestCase):
    EXTRA_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.repo_dir = tempfile.mkdtemp(prefix="bms-e2e-auth-repo-")
        for name in ("fashion_mlp", "fashion_cnn"):
            shutil.copytree(os.path.join(bmstest.MODELS, name),
                            os.path.join(cls.repo_dir, name))
        cls.server = bmstest.Server(repository=cls.repo_dir,
                                    extra_args=cls.EXTRA_ARGS)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.repo_dir, ignore_errors=True)
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.repo_dir, ignore_errors=True)

    def req(self, method, path, body=None, token=None, headers=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs.update(bearer(token))
        return self.client.request(method, path, body, hdrs)

    def make_key(self, token, **fields):
        r = self.req("POST", "/api/keys", json.dumps(fields), token)
        self.assertEqual(r.status, 201, r)
        return r.json()


class AuthTest(_AuthCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # No key yet: the API is open, and the first admin key is made
        # over it.
        r = cls.client.request("GET", "/api/keys")
        if r.status != 200:
            raise AssertionError("open API refused GET /api/keys: %r" % r)
        r = cls.client.request("POST", "/api/keys",
                               json.dumps({"name": "root", "role": "admin"}))
        if r.status != 201:
            raise AssertionError("first key not made: %r" % r)
        cls.admin = r.json()["token"]

    def user_key(self, **fields):
        fields.setdefault("name", "user")
        fields.setdefault("role", "user")
        return self.make_key(self.admin, **fields)

    # --- refusals -------------------------------------------------------

    def test_missing_key_is_401_with_challenge(self):
        r = self.req("GET", "/v2")
        self.assertEqual(r.status, 401, r)
        self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))
        self.assertIn("authorization", r.json()["error"])
        r = self.req("POST", "/v2/models/fashion_mlp/infer",
                     zero_body("fashion_mlp"))
        self.assertEqual(r.status, 401, r)

    def test_malformed_headers_are_401(self):
        tok = self.admin
        for value in ("Basic " + tok, "Bearer", "Bearer ", tok,
                      "Bearer " + tok + "x", "Bearer " + tok[:-1],
                      "Bearer " + tok.upper(), "Bearer " + tok + " extra",
                      "Bearer\t" + tok, "Bearer " + tok.replace("_", "-"),
                      "Bearer " + tok + "\x01", "Bearer \x7f" + tok):
            r = self.req("GET", "/v2", headers={"Authorization": value})
            self.assertEqual(r.status, 401, (value, r))

    def test_bearer_scheme_is_case_insensitive(self):
        for scheme in ("bearer", "BEARER", "Bearer  "):
            r = self.req("GET", "/v2", headers={
                "Authorization": scheme.strip() + " " + self.admin})
            self.assertEqual(r.status, 200, (scheme, r))

    def test_unknown_key_is_401(self):
        r = self.req("GET", "/v2", token="bms_" + "0" * 12 + "_" + "a" * 64)
        self.assertEqual(r.status, 401, r)

    def test_right_id_wrong_secret_is_401(self):
        key = self.user_key()
        token = key["token"]
        last = "1" if token[-1] == "0" else "0"
        wrong = token[:-1] + last
        r = self.req("GET", "/v2", token=wrong)
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.json()["error"],
                         "authorization: unknown or revoked key")
        self.assertEqual(self.req("GET", "/v2", token=token).status, 200)

    def test_user_on_admin_routes_is_403(self):
        token = self.user_key()["token"]
        for method, path, body in (
                ("GET", "/api/keys", None),
                ("POST", "/api/keys", '{"name": "x", "role": "admin"}'),
                ("GET", "/api/alerts", None),
                ("GET", "/api/requests", None),
                ("PUT", "/v2/models/fashion_mlp/routing",
                 '{"weights": {"1": 100}}'),
                ("POST", "/v2/models/fashion_mlp/stop", ""),
                ("POST", "/v2/repository/index", "")):
            r = self.req(method, path, body, token)
            self.assertEqual(r.status, 403, (method, path, r))
            self.assertIn("role", r.json()["error"])

    def test_model_not_in_allow_list_is_403(self):
        token = self.user_key(models=["fashion_mlp"])["token"]
        r = self.req("POST", "/v2/models/fashion_mlp/infer",
                     zero_body("fashion_mlp"), token)
        self.assertEqual(r.status, 200, r)
        r = self.req("POST", "/v2/models/fashion_cnn/infer",
                     zero_body("fashion_cnn"), token)
        self.assertEqual(r.status, 403, r)
        self.assertIn("fashion_cnn", r.json()["error"])
        self.assertEqual(self.req("GET", "/v2/models/fashion_cnn", None,
                                  token).status, 403)
        self.assertEqual(self.req("GET", "/v2/models/fashion_mlp", None,
                                  token).status, 200)
        # An admin key has no allow-list.
        self.assertEqual(self.req("GET", "/v2/models/fashion_cnn", None,
                                  self.admin).status, 200)

    def test_allow_list_change_counts_at_once(self):
        key = self.user_key(models=["fashion_mlp"])
        r = self.req("PUT", "/api/keys/" + key["id"],
                     '{"models": ["fashion_cnn"]}', self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["models"], ["fashion_cnn"])
        self.assertEqual(self.req("GET", "/v2/models/fashion_mlp", None,
                                  key["token"]).status, 403)
        self.assertEqual(self.req("GET", "/v2/models/fashion_cnn", None,
                                  key["token"]).status, 200)

    def test_revoked_via_api_is_401(self):
        key = self.user_key()
        self.assertEqual(self.req("GET", "/v2", None, key["token"]).status,
                         200)
        r = self.req("DELETE", "/api/keys/" + key["id"], None, self.admin)
        self.assertEqual(r.status, 200, r)
        self.assertFalse(r.json()["active"])
        self.assertGreater(r.json()["revoked_us"], 0)
        r = self.req("GET", "/v2", None, key["token"])
        self.assertEqual(r.status, 401, r)
        # Revoked keys stay listed, inactive, and cannot be changed.
        r = self.req("GET", "/api/keys/" + key["id"], None, self.admin)
        self.assertFalse(r.json()["active"])
        r = self.req("PUT", "/api/keys/" + key["id"], '{"models": []}',
                     self.admin)
        self.assertEqual(r.status, 409, r)

    def test_revoked_via_cli_is_401_within_2_s(self):
        key = self.user_key()
        self.assertEqual(self.req("GET", "/v2", None, key["token"]).status,
                         200)
        rc, _, err = run_cli("revoke", key["id"], "--data-dir",
                             self.server.data_dir)
        self.assertEqual(rc, 0, err)
        start = time.monotonic()
        status = 200
        while status == 200 and time.monotonic() - start < RELOAD_WAIT_S:
            time.sleep(0.1)
            status = self.req("GET", "/v2", None, key["token"]).status
        self.assertEqual(status, 401)
        self.assertLess(time.monotonic() - start, 2.0 + 0.2)

    def test_key_made_with_cli_works(self):
        rc, out, err = run_cli("create", "--name", "cli", "--role", "user",
                               "--models", "fashion_mlp", "--data-dir",
                               self.server.data_dir)
        self.assertEqual(rc, 0, err)
        lines = dict(line.split(None, 1) for line in out.splitlines())
        token = lines["token"].strip()
        self.assertRegex(token, TOKEN_RE)
        self.assertEqual(token[4:16], lines["id"].strip())
        deadline = time.monotonic() + RELOAD_WAIT_S
        status = 401
        while status == 401 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = self.req("GET", "/v2/models/fashion_mlp", None,
                              token).status
        self.assertEqual(status, 200)
        self.assertEqual(self.req("GET", "/v2/models/fashion_cnn", None,
                                  token).status, 403)

    def test_cli_refuses_bad_input_with_exit_2(self):
        for args in (("create", "--role", "user"),
                     ("create", "--name", "x", "--role", "boss"),
                     ("create", "--name", "x", "--role", "admin",
                      "--models", "m"),
                     ("create", "--name", "x", "--role", "user", "--rps",
                      "-1"),
                     ("limit", "abc"),
                     ("frobnicate",)):
            rc, _, err = run_cli(*(args + ("--data-dir",
                                           self.server.data_dir)))
            self.assertEqual(rc, 2, (args, err))
            self.assertEqual(len(err.strip().splitlines()), 1, (args, err))

    # --- rate limits ----------------------------------------------------

    def test_key_rate_limit_429_then_recovery(self):
        token = self.user_key(requests_per_s=2, burst=2)["token"]
        r1 = self.req("GET", "/v2", None, token)
        r2 = self.req("GET", "/v2", None, token)
        r3 = self.req("GET", "/v2", None, token)
        self.assertEqual((r1.status, r2.status, r3.status), (200, 200, 429))
        self.assertEqual(r1.header("X-RateLimit-Limit"), "2")
        self.assertEqual(r1.header("X-RateLimit-Remaining"), "1")
        self.assertEqual(r2.header("X-RateLimit-Remaining"), "0")
        self.assertEqual(r3.header("Retry-After"), "1")   # ceil(1 / 2)
        self.assertEqual(r3.header("X-RateLimit-Limit"), "2")
        self.assertEqual(r3.header("X-RateLimit-Remaining"), "0")
        self.assertIn("rate limit", r3.json()["error"])
        # One token comes back after 1 / rps = 0.5 s.
        time.sleep(0.5 + 0.1)
        self.assertEqual(self.req("GET", "/v2", None, token).status, 200)
        self.assertEqual(self.req("GET", "/v2", None, token).status, 429)

    def test_key_limit_change_counts_at_once(self):
        key = self.user_key(requests_per_s=1, burst=1)
        self.assertEqual(self.req("GET", "/v2", None, key["token"]).status,
                         200)
        self.assertEqual(self.req("GET", "/v2", None, key["token"]).status,
                         429)
        r = self.req("PUT", "/api/keys/" + key["id"],
                     '{"requests_per_s": 0}', self.admin)
        self.assertEqual(r.status, 200, r)
        for _ in range(5):
            self.assertEqual(self.req("GET", "/v2", None,
                                      key["token"]).status, 200)

    def test_model_limit_counts_every_caller(self):
        rc, _, err = run_cli("model-limit", "fashion_cnn", "--rps", "1",
                             "--burst", "1", "--data-dir",
                             self.server.data_dir)
        self.assertEqual(rc, 0, err)
        try:
            time.sleep(RELOAD_WAIT_S)
            body = zero_body("fashion_cnn")
            r1 = self.req("POST", "/v2/models/fashion_cnn/infer", body,
                          self.admin)
            r2 = self.req("POST", "/v2/models/fashion_cnn/infer", body,
                          self.admin)
            self.assertEqual((r1.status, r2.status), (200, 429), (r1, r2))
            self.assertEqual(r1.header("X-RateLimit-Limit"), "1")
            self.assertEqual(r2.header("Retry-After"), "1")
            self.assertIn("fashion_cnn", r2.json()["error"])
            # Another model is not held back.
            r = self.req("POST", "/v2/models/fashion_mlp/infer",
                         zero_body("fashion_mlp"), self.admin)
            self.assertEqual(r.status, 200, r)
            time.sleep(1.1)
            r = self.req("POST", "/v2/models/fashion_cnn/infer", body,
                         self.admin)
            self.assertEqual(r.status, 200, r)
        finally:
            run_cli("model-limit", "fashion_cnn", "--rps", "0",
                    "--data-dir", self.server.data_dir)
        time.sleep(RELOAD_WAIT_S)
        for _ in range(3):
            r = self.req("POST", "/v2/models/fashion_cnn/infer",
                         zero_body("fashion_cnn"), self.admin)
            self.assertEqual(r.status, 200, r)

    # --- open routes ----------------------------------------------------

    def test_health_routes_stay_open(self):
        for path in ("/v2/health/live", "/v2/health/ready",
                     "/openapi.json", "/docs"):
            r = self.req("GET", path)
            self.assertNotIn(r.status, (401, 403), (path, r))
        self.assertEqual(self.req("GET", "/v2/health/live").status, 200)

    # --- tokens ---------------------------------------------------------

    def test_token_shown_once_and_never_listed(self):
        key = self.user_key(name="once")
        token = key["token"]
        self.assertRegex(token, TOKEN_RE)
        self.assertEqual(token[4:16], key["id"])
        listing = self.req("GET", "/api/keys", None, self.admin)
        one = self.req("GET", "/api/keys/" + key["id"], None, self.admin)
        for r in (listing, one):
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(token[17:].encode(), r.body)
            self.assertNotIn(b"token", r.body)
            self.assertNotIn(b"hash", r.body)
            self.assertNotIn(b"salt", r.body)
        ids = [k["id"] for k in listing.json()["keys"]]
        self.assertIn(key["id"], ids)
        self.assertEqual(one.json()["name"], "once")

    def test_store_file_holds_no_token(self):
        token = self.user_key(name="stored")["token"]
        secret = token[17:]
        raw_secret = bytes.fromhex(secret)
        for suffix in ("", "-wal"):
            path = self.server.db_path() + suffix
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            self.assertNotIn(token.encode(), data)
            self.assertNotIn(secret.encode(), data)
            self.assertNotIn(raw_secret, data)

    def test_bad_key_bodies_are_400_naming_the_field(self):
        for body, field in (
                ('{"role": "user"}', "name"),
                ('{"name": "x"}', "role"),
                ('{"name": "x", "role": "boss"}', "role"),
                ('{"name": "x", "role": "user", "models": "m"}', "models"),
                ('{"name": "x", "role": "user", "models": ["a/b"]}',
                 "models"),
                ('{"name": "x", "role": "admin", "models": ["m"]}',
                 "models"),
                ('{"name": "x", "role": "user", "requests_per_s": -1}',
                 "requests_per_s"),
                ('{"name": "x", "role": "user", "burst": 1.5}', "burst"),
                ('{"name": "x", "role": "user", "colour": 1}', "colour"),
                ('{"name": "x\\u0001", "role": "user"}', "name"),
                ('[1]', "body"),
                ('{"name": ', "body")):
            r = self.req("POST", "/api/keys", body, self.admin)
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn(field, r.json()["error"], body)
        r = self.req("GET", "/api/keys/000000000000", None, self.admin)
        self.assertEqual(r.status, 404, r)

    def test_records_carry_the_key_id(self):
        key = self.user_key(name="recorded")
        r = self.req("POST", "/v2/models/fashion_mlp/infer",
                     zero_body("fashion_mlp"), key["token"])
        self.assertEqual(r.status, 200, r)
        rid = r.request_id
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                recs = [x for x in self.server.records() if x["id"] == rid]
            except Exception:       # the table may be busy a moment
                recs = []
            if recs:
                break
            time.sleep(0.1)
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["key_id"], key["id"])

    # --- attacker's tries -----------------------------------------------

    def test_huge_authorization_header_is_refused(self):
        sock = bmstest.raw_connect(self.server.port)
        try:
            head = ("GET /v2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                    + "a" * 200000 + "\r\n\r\n").encode()
            try:
                sock.sendall(head)
            except (BrokenPipeError, ConnectionResetError):
                pass
            got = bmstest.raw_read_response(sock)
        finally:
            sock.close()
        if got is not None:
            self.assertIn(got[0], (400, 401, 413, 431), got)
        self.assertEqual(self.req("GET", "/v2/health/live").status, 200)

    def test_nul_and_control_bytes_in_header(self):
        for value in (b"Bearer \x00" + self.admin.encode(),
                      b"Bearer " + self.admin.encode()[:20] + b"\x00"
                      + self.admin.encode()[20:],
                      b"Bearer " + b" " * 3000 + self.admin.encode()[:-1],
                      b"Bearer \xff\xfe" + self.admin.encode()[2:]):
            sock = bmstest.raw_connect(self.server.port)
            try:
                sock.sendall(b"GET /v2 HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: " + value + b"\r\n\r\n")
                got = bmstest.raw_read_response(sock)
            finally:
                sock.close()
            if got is not None:
                self.assertIn(got[0], (400, 401), (value[:40], got))
        self.assertEqual(self.req("GET", "/v2/health/live").status, 200)

    def test_upload_without_key_is_refused_before_the_body(self):
        body = b"\0" * (16 << 20)
        sock = bmstest.raw_connect(self.server.port)
        try:
            head = ("PUT /v2/repository/models/evil/package HTTP/1.1\r\n"
                    "Host: x\r\nContent-Type: application/x-tar\r\n"
                    "Content-Length: %d\r\n\r\n" % len(body)).encode()
            all_sent = bmstest.raw_send_body_watching(sock, head, body,
                                                      chunk=1 << 16,
                                                      pause=0.2)
            got = bmstest.raw_read_response(sock)
        finally:
            sock.close()
        self.assertFalse(all_sent, "the server read the whole body")
        self.assertIsNotNone(got)
        self.assertEqual(got[0], 401, got)

    def test_refusal_keeps_the_connection(self):
        client = self.server.client()
        try:
            r = client.request("GET", "/v2")
            self.assertEqual(r.status, 401)
            r = client.request("GET", "/v2", headers=bearer(self.admin))
            self.assertEqual(r.status, 200)
            self.assertEqual(client.n_connects, 1)
        finally:
            client.close()


class NoAuthTest(_AuthCase):
    EXTRA_ARGS = ("--no-auth",)

    def test_no_auth_serves_without_keys_and_says_so(self):
        r = self.req("POST", "/api/keys", '{"name": "a", "role": "admin"}')
        self.assertEqual(r.status, 201, r)
        # A key exists, yet nothing asks for one.
        self.assertEqual(self.req("GET", "/v2").status, 200)
        self.assertEqual(self.req("GET", "/api/keys").status, 200)
        warned = [line for line in self.server.log_lines
                  if "level=warn" in line and "--no-auth" in line]
        self.assertTrue(warned, self.server.log())


if __name__ == "__main__":
    unittest.main()

"""
Every error of docs/api.md, with its status and a message naming the
field; bodies that are too big or arrive slowly; a bounded fuzz loop of
mutated bodies; raw-socket garbage.  The server must answer each with a
JSON error (or a 200) and stay up; every bad infer request is recorded as
a client error.
"""

import json
import os
import random
import socket
import subprocess
import tempfile
import time
import unittest

import bmstest

MODEL = "fashion_mlp"
INFER = "/v2/models/%s/infer" % MODEL
MIB = 1 << 20


def base_doc(n=1, nested=False):
    """A valid request for n test images, as a dict."""
    images = bmstest.load_test_images()[:n]
    shape = [n, 28, 28]
    text = bmstest.infer_body(images, [28, 28], nested=nested)
    doc = json.loads(text)
    doc["inputs"][0]["shape"] = shape
    return doc


def dumps(doc):
    return json.dumps(doc).encode("utf-8")


class _ServerCase(unittest.TestCase):
    """One server for the whole class; checks it stopped cleanly."""

    EXTRA_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.server = bmstest.Server(extra_args=cls.EXTRA_ARGS)
        cls.server.start()
        cls.client = cls.server.client()
        cls.reference = bmstest.model_reference(MODEL)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()

    def assert_error(self, resp, status, *names, what=""):
        """resp is `status` with a JSON error naming each of names."""
        where = "%s -> %r" % (what, resp)
        self.assertEqual(resp.status, status, where)
        ctype = resp.header("Content-Type") or ""
        self.assertTrue(ctype.startswith("application/json"), where)
        self.assertIsNotNone(resp.request_id, "no X-Request-Id: " + where)
        doc = json.loads(resp.body.decode("utf-8"))
        self.assertIsInstance(doc, dict, where)
        msg = doc.get("error")
        self.assertIsInstance(msg, str, where)
        self.assertTrue(msg.strip(), "empty error message: " + where)
        for name in names:
            self.assertIn(name, msg, where)
        return msg

    def assert_alive(self):
        client = self.server.client(timeout=10)
        try:
            resp = client.get("/v2/health/live")
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json(), {"live": True})
            images = bmstest.load_test_images()[:2]
            resp = client.infer(MODEL, bmstest.infer_body(images, [28, 28]))
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["outputs"][0]["data"],
                             self.reference[:2])
        finally:
            client.close()


class ApiErrorTest(_ServerCase):
    """The error table of docs/api.md, one case at a time."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.expected_records = []   # (X-Request-Id, status, message)

    def send(self, method, path, body, status, *names):
        resp = self.client.request(method, path, body)
        msg = self.assert_error(resp, status, *names,
                                what="%s %s %r" % (method, path,
                                                   bytes(body or b"")[:120]))
        if method == "POST" and path.endswith("/infer"):
            self.expected_records.append((resp.request_id, status, msg))
        return resp, msg

    def bad_infer(self, body, status, *names):
        if isinstance(body, dict):
            body = dumps(body)
        return self.send("POST", INFER, body, status, *names)

    def doc_with(self, **fields):
        doc = base_doc()
        doc["inputs"][0].update(fields)
        return doc

    # --- JSON and top level ----------------------------------------

    def test_malformed_json(self):
        good = dumps(base_doc())
        for body in (b"", b"{", b"}", b"{\"inputs\": [}",
                     b"{\"inputs\": [{\"name\": \"image\",}]}",
                     b"{'inputs': []}", good + b" trailing",
                     good[:len(good) // 2], b"nul", b"{\"inputs\" []}",
                     b"{\"inputs\": [{\"data\": [1,,2]}]}",
                     b"{\"inputs\": [{\"data\": [01]}]}",
                     b"{\"inputs\": [{\"data\": [.5]}]}",
                     b"\xef\xbb\xbf{}x"):
            with self.subTest(body=body[:60]):
                self.bad_infer(body, 400)

    def test_body_not_an_object(self):
        for body in (b"[1, 2]", b"\"inputs\"", b"42", b"null", b"true"):
            with self.subTest(body=body):
                self.bad_infer(body, 400)

    def test_inputs_missing_or_not_an_array(self):
        self.bad_infer({}, 400, "inputs")
        self.bad_infer({"inputs": {"name": "image"}}, 400, "inputs")
        self.bad_infer({"inputs": "image"}, 400, "inputs")
        self.bad_infer({"inputs": [5]}, 400, "inputs[0]")

    def test_mistyped_top_level_fields(self):
        doc = base_doc()
        doc["id"] = 5
        self.bad_infer(doc, 400, "id")
        doc = base_doc()
        doc["parameters"] = [1]
        self.bad_infer(doc, 400, "parameters")
        doc = base_doc()
        doc["outputs"] = {"name": "label"}
        self.bad_infer(doc, 400, "outputs")

    # --- one input ----------------------------------------------------

    def test_input_name_missing(self):
        doc = base_doc()
        del doc["inputs"][0]["name"]
        self.bad_infer(doc, 400, "inputs[0].name")

    def test_unknown_datatype(self):
        for dtype in ("FLOAT32", "fp32", "", "BYTES2"):
            with self.subTest(dtype=dtype):
                self.bad_infer(self.doc_with(datatype=dtype), 400,
                               "inputs[0].datatype")
        self.bad_infer(self.doc_with(datatype=32), 400, "inputs[0].datatype")

    def test_datatype_differs_from_model(self):
        for dtype in ("FP64", "INT64", "INT32", "UINT8", "FP16"):
            with self.subTest(dtype=dtype):
                doc = self.doc_with(datatype=dtype,
                                    data=[0] * 784)
                self.bad_infer(doc, 400, "inputs[0].datatype")

    def test_uint8_out_of_range(self):
        # The bundled models take FP32 only, so this is refused either for
        # the range or for the datatype: both are a 400 on inputs[0].
        doc = self.doc_with(datatype="UINT8", data=[300] * 784)
        self.bad_infer(doc, 400, "inputs[0]")

    def test_wrong_shape(self):
        # data with as many elements as the shape says, so that only the
        # shape itself is wrong
        for shape in ([1, 784], [28, 28], [1, 28, 27], [1, 1, 28, 28],
                      [1, 28, 28, 1], [2, 14, 56], [1, 27, 29]):
            with self.subTest(shape=shape):
                count = 1
                for d in shape:
                    count *= d
                self.bad_infer(self.doc_with(shape=shape,
                                             data=[0.5] * count), 400,
                               "inputs[0].shape")
        self.bad_infer(self.doc_with(shape=[-1, 28, 28]), 400,
                       "inputs[0].shape")
        self.bad_infer(self.doc_with(shape="1x28x28"), 400, "inputs[0].shape")
        self.bad_infer(self.doc_with(shape=[1, 28, "28"]), 400,
                       "inputs[0].shape")
        doc = base_doc()
        del doc["inputs"][0]["shape"]
        self.bad_infer(doc, 400, "inputs[0].shape")

    def test_shape_message_names_expected_and_got(self):
        _, msg = self.bad_infer(self.doc_with(shape=[2, 784],
                                              data=[0.0] * 1568),
                                400, "inputs[0].shape")
        self.assertIn("28, 28", msg)
        self.assertIn("784", msg)

    def test_element_count_differs_from_shape(self):
        self.bad_infer(self.doc_with(shape=[2, 28, 28]), 400, "inputs[0]")
        self.bad_infer(self.doc_with(data=[0.5] * 783), 400, "inputs[0]")
        self.bad_infer(self.doc_with(data=[0.5] * 785), 400, "inputs[0]")
        self.bad_infer(self.doc_with(data=[]), 400, "inputs[0]")

    def test_ragged_nested_data(self):
        rows = [[0.25] * 28 for _ in range(28)]
        rows[5] = [0.25] * 27
        self.bad_infer(self.doc_with(data=[rows]), 400, "inputs[0].data")
        rows = [[0.25] * 28 for _ in range(27)]
        self.bad_infer(self.doc_with(data=[rows]), 400, "inputs[0]")
        # nested, but not as deep as the rank
        self.bad_infer(self.doc_with(data=[[0.25] * 28] * 28), 400,
                       "inputs[0].data")
        # nested deeper than the rank
        deep = [[[[0.25]] * 28 for _ in range(28)]]
        self.bad_infer(self.doc_with(data=deep), 400, "inputs[0].data")
        # a scalar where a row should be
        rows = [[0.25] * 28 for _ in range(28)]
        rows[3] = 0.25
        self.bad_infer(self.doc_with(data=[rows]), 400, "inputs[0].data")

    def test_data_of_the_wrong_kind(self):
        data = [0.5] * 784
        data[17] = "0.5"
        self.bad_infer(self.doc_with(data=data), 400, "inputs[0].data")
        data[17] = True
        self.bad_infer(self.doc_with(data=data), 400, "inputs[0].data")
        data[17] = None
        self.bad_infer(self.doc_with(data=data), 400, "inputs[0].data")
        data[17] = {}
        self.bad_infer(self.doc_with(data=data), 400, "inputs[0].data")
        self.bad_infer(self.doc_with(data="pixels"), 400, "inputs[0].data")
        doc = base_doc()
        del doc["inputs"][0]["data"]
        self.bad_infer(doc, 400, "inputs[0].data")

    # --- the set of inputs and outputs ------------------------------

    def test_missing_input(self):
        self.bad_infer({"inputs": []}, 400, "image")

    def test_repeated_input(self):
        doc = base_doc()
        doc["inputs"].append(dict(doc["inputs"][0]))
        self.bad_infer(doc, 400, "image")

    def test_unknown_input(self):
        doc = base_doc()
        extra = dict(doc["inputs"][0])
        extra["name"] = "mask_input"
        doc["inputs"].append(extra)
        self.bad_infer(doc, 400, "mask_input")
        doc = base_doc()
        doc["inputs"][0]["name"] = "picture"
        self.bad_infer(doc, 400, "picture")

    def test_unknown_requested_output(self):
        doc = base_doc()
        doc["outputs"] = [{"name": "probabilities"}]
        self.bad_infer(doc, 400, "probabilities")
        doc["outputs"] = [{"parameters": {"raw": True}}]
        self.bad_infer(doc, 400, "outputs[0]")

    def test_bad_classification_k(self):
        for k in (0, -1, "x", 2.5, True, None, [3]):
            with self.subTest(k=k):
                doc = base_doc()
                doc["outputs"] = [{"name": "label",
                                   "parameters": {"classification": k}}]
                self.bad_infer(doc, 400, "classification")

    def test_bad_raw_parameter(self):
        doc = base_doc()
        doc["outputs"] = [{"name": "label", "parameters": {"raw": "yes"}}]
        self.bad_infer(doc, 400, "raw")

    # --- paths and methods --------------------------------------------

    def test_unknown_model(self):
        body = dumps(base_doc())
        self.send("POST", "/v2/models/no_such_model/infer", body, 404,
                  "no_such_model")
        self.send("GET", "/v2/models/no_such_model", None, 404,
                  "no_such_model")
        self.send("GET", "/v2/models/no_such_model/ready", None, 404)

    def test_unknown_version(self):
        body = dumps(base_doc())
        self.send("POST", "/v2/models/%s/versions/7/infer" % MODEL, body,
                  404, MODEL, "7")
        self.send("GET", "/v2/models/%s/versions/7" % MODEL, None, 404,
                  MODEL, "7")
        self.send("GET", "/v2/models/%s/versions/7/ready" % MODEL, None,
                  404)

    def test_non_numeric_version(self):
        # A version that cannot be one is a bad request (docs/api.md),
        # and the message names the text.
        body = dumps(base_doc())
        for version in ("abc", "1x", "-1", "0x1", "1.0"):
            with self.subTest(version=version):
                path = "/v2/models/%s/versions/%s/infer" % (MODEL, version)
                resp = self.client.post(path, body)
                self.assertEqual(resp.status, 400, resp)
                msg = self.assert_error(resp, 400, version)
                self.expected_records.append((resp.request_id, resp.status,
                                              msg))

    def test_unknown_path(self):
        for path in ("/", "/v1/models", "/v2/foo", "/v2/health",
                     "/v2/health/live%00garbage", "/v2%00/health/live",
                     "/v2/health/dead", "/v2/models",
                     "/v2/models/%s/bogus" % MODEL,
                     "/v2/models/%s/versions" % MODEL,
                     "/v2/models/%s/versions/1/infer/x" % MODEL,
                     "/v2//health/live", "/v2/health/live/"):
            with self.subTest(path=path):
                self.send("GET", path, None, 404)
        self.send("POST", "/v2/models/%s/predict" % MODEL,
                  dumps(base_doc()), 404)

    def test_wrong_method(self):
        for method, path in (("POST", "/v2/health/live"),
                             ("POST", "/v2/health/ready"),
                             ("PUT", "/v2"),
                             ("DELETE", "/v2/models/%s" % MODEL),
                             ("GET", INFER),
                             ("PUT", INFER),
                             ("POST", "/v2/models/%s/ready" % MODEL)):
            with self.subTest(method=method, path=path):
                body = b"{}" if method in ("POST", "PUT") else None
                resp, _ = self.send(method, path, body, 405)
                self.assertIsNotNone(resp.header("Allow"),
                                     "405 without Allow: %s %s"
                                     % (method, path))

    # --- body size and speed ------------------------------------------

    def raw_infer(self, head_extra, body, pause=0.0):
        """POST body on a fresh socket; returns the parsed response."""
        sock = bmstest.raw_connect(self.server.port, timeout=60)
        try:
            head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n%s\r\n"
                    % (INFER, head_extra)).encode("ascii")
            t0 = time.monotonic()
            self.sent_all = bmstest.raw_send_body_watching(sock, head, body,
                                                           pause=pause)
            got = bmstest.raw_read_response(sock, timeout=60)
            self.raw_seconds = time.monotonic() - t0
            return got
        finally:
            sock.close()

    def check_raw_error(self, got, status):
        self.assertIsNotNone(got, "connection closed without a response "
                             "(whole body sent: %s, after %.2f s)"
                             % (self.sent_all, self.raw_seconds))
        code, headers, body = got
        self.assertEqual(code, status, body[:200])
        doc = json.loads(body)
        self.assertIsInstance(doc.get("error"), str)
        self.assertIn("x-request-id", headers)
        self.expected_records.append((headers["x-request-id"], status,
                                      doc["error"]))

    def test_oversized_body_with_length_is_413(self):
        body = b" " * (65 * MIB)
        got = self.raw_infer("Content-Length: %d\r\n" % len(body), body,
                             pause=0.3)
        self.check_raw_error(got, 413)

    def test_oversized_chunked_body_is_413(self):
        piece = b" " * MIB
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        body = chunk * 66 + b"0\r\n\r\n"
        got = self.raw_infer("Transfer-Encoding: chunked\r\n", body)
        self.check_raw_error(got, 413)

    def test_small_limit_option_if_the_cli_has_one(self):
        # Only checked when `bms help` lists a body size option.
        usage = subprocess.run([bmstest.BMS_BIN, "help"],
                               capture_output=True, text=True, timeout=10)
        text = usage.stdout + usage.stderr
        if "--max-body-size" not in text:
            return
        server = bmstest.Server(extra_args=["--max-body-size", "4096"])
        server.start()
        client = server.client()
        seen = []
        try:
            small = b'{"inputs": []}' + b" " * 4000
            resp = client.infer(MODEL, small)
            self.assert_error(resp, 400, "image")
            seen.append((resp.request_id, 400))
            resp = client.infer(MODEL, small + b" " * 100)
            self.assert_error(resp, 413)
            seen.append((resp.request_id, 413))
            # chunked, past the limit: refused at its end
            sock = bmstest.raw_connect(server.port)
            body = b"1000\r\n" + b" " * 4096 + b"\r\n" + \
                b"400\r\n" + b" " * 1024 + b"\r\n0\r\n\r\n"
            bmstest.raw_send_body_watching(sock, (
                "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % INFER).encode(),
                body)
            got = bmstest.raw_read_response(sock)
            sock.close()
            self.assertIsNotNone(got)
            self.assertEqual(got[0], 413, got[2])
            seen.append((got[1]["x-request-id"], 413))
            resp = client.infer(MODEL, dumps(base_doc()))
            self.assert_error(resp, 413)
        finally:
            client.close()
            server.stop()
        try:
            records = {r["id"]: r for r in server.records()}
            for req_id, status in seen:
                self.assertEqual((records[req_id]["http_status"],
                                  records[req_id]["outcome"]),
                                 (status, "client_error"))
        finally:
            server.cleanup()

    def test_big_body_under_the_limit_is_served(self):
        # 20 MiB of whitespace around a valid request.
        body = b" " * (20 * MIB) + dumps(base_doc()) + b"\n" * MIB
        resp = self.client.post(INFER, body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         self.reference[:1])

    def test_slow_body_is_served(self):
        body = dumps(base_doc(n=3, nested=True))
        sock = bmstest.raw_connect(self.server.port, timeout=30)
        try:
            sock.sendall(("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %d\r\n\r\n"
                          % (INFER, len(body))).encode("ascii"))
            step = len(body) // 20 + 1
            for i in range(0, len(body), step):
                sock.sendall(body[i:i + step])
                time.sleep(0.1)
            got = bmstest.raw_read_response(sock, timeout=30)
        finally:
            sock.close()
        self.assertIsNotNone(got, "no response to a slow body")
        self.assertEqual(got[0], 200, got[2][:200])
        self.assertEqual(json.loads(got[2])["outputs"][0]["data"],
                         self.reference[:3])

    # --- afterwards ---------------------------------------------------

    def test_zy_alive_after_errors(self):
        self.assert_alive()

    def test_zz_bad_requests_recorded_as_client_errors(self):
        self.server.stop()
        records = {r["id"]: r for r in self.server.records()}
        self.assertGreater(len(self.expected_records), 50)
        for req_id, status, msg in self.expected_records:
            rec = records.get(req_id)
            self.assertIsNotNone(rec, "no record for %s (%d %s)"
                                 % (req_id, status, msg))
            self.assertEqual((rec["http_status"], rec["outcome"]),
                             (status, "client_error"), msg)
            self.assertTrue(rec["error"], "record %s has no error" % req_id)
            self.assertTrue(msg.startswith(rec["error"]),
                            "record error %r, response %r"
                            % (rec["error"], msg))
            self.assertEqual(rec["client"], "127.0.0.1")


class FuzzTest(_ServerCase):
    """Random damage to valid bodies, and garbage on raw sockets."""

    N_REQUESTS = 2000
    SEED = int(os.environ.get("BMS_FUZZ_SEED", "20240611"))

    def mutate(self, rng, bases):
        base = rng.choice(bases)
        kind = rng.choice(["flip", "truncate", "bracket", "number", "deep",
                           "long", "nul", "utf8", "value", "value",
                           "splice", "escape", "shape", "dtype",
                           "params"])
        b = bytearray(base)
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == "truncate":
            del b[rng.randrange(len(b)):]
        elif kind == "bracket":
            for _ in range(rng.randint(1, 4)):
                b.insert(rng.randrange(len(b) + 1), ord(rng.choice("[]{}")))
        elif kind == "number":
            text = rng.choice([b"1e999", b"-1e999", b"1e-999",
                               b"123456789012345678901234567890",
                               b"1" + b"0" * 5000, b"-0", b"1E+308",
                               b"9223372036854775808", b"-" + b"9" * 400,
                               b"4.9e-324", b"0." + b"1" * 3000])
            pos = b.find(b"0.", rng.randrange(len(b)))
            if pos < 0:
                pos = b.find(b"0.")
            end = pos
            while end < len(b) and b[end] in b"0123456789.eE-+":
                end += 1
            b[pos:end] = text
        elif kind == "deep":
            depth = rng.choice([100, 1000, 10000])
            nest = b"[" * depth + b"0.5" + b"]" * depth
            where = rng.choice([b'"data": ', b'"shape": ', b'"inputs": '])
            pos = b.find(where) + len(where)
            end = pos
            level = 0
            while True:
                c = b[end]
                level += (c == ord("[")) - (c == ord("]"))
                end += 1
                if level == 0:
                    break
            b[pos:end] = nest
            if rng.random() < 0.5:
                b = bytearray(b'{"x": ' + b"[" * depth + b"]" * depth +
                              b", " + base[1:])
        elif kind == "long":
            size = rng.choice([1000, 100000, 1 * MIB])
            text = b"a" * size
            where = rng.choice([b'"image"', b'"FP32"', b'"inputs"'])
            b = bytearray(base.replace(where, b'"' + text + b'"', 1))
            if rng.random() < 0.3:
                b = bytearray(b'{"id": "' + text + b'", ' + base[1:])
        elif kind == "nul":
            for _ in range(rng.randint(1, 4)):
                b.insert(rng.randrange(len(b) + 1), 0)
            if rng.random() < 0.5:
                b = bytearray(base.replace(b'"image"', b'"ima\x00ge"', 1))
        elif kind == "utf8":
            bad = rng.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80",
                              b"\xe2\x82", b"\xf8\x88\x80\x80\x80",
                              b"\x80"])
            where = rng.choice([b'"image"', b'"FP32"', b'"inputs"'])
            b = bytearray(base.replace(where, where[:-1] + bad + b'"', 1))
        elif kind == "escape":
            text = rng.choice([b"\\u0000", b"\\ud800", b"\\udfff\\ud800",
                               b"\\\"", b"\\x41", b"\\u12", b"\\n\\t\\b"])
            b = bytearray(base.replace(b'"image"',
                                       b'"ima' + text + b'ge"', 1))
        elif kind in ("shape", "dtype", "params"):
            b = bytearray(self.replace_field(rng, kind, json.loads(base)))
        elif kind == "splice":
            i = rng.randrange(len(base))
            j = rng.randrange(len(base))
            b = bytearray(base[:i] + base[j:])
        else:
            b = bytearray(self.replace_value(rng, json.loads(base)))
        return kind, bytes(b)

    def replace_field(self, rng, kind, doc):
        item = doc["inputs"][0]
        if kind == "shape":
            item["shape"] = rng.choice([
                [0, 28, 28], [100000000, 28, 28], [2 ** 62, 28, 28],
                [2 ** 63 - 1, 1, 1], [-2, 28, 28], [1, 0, 784],
                [1, 28, 28, 0], [], [1] * 64, [1, 2 ** 31, 2 ** 31],
                [3, 28, 28], [1.5, 28, 28], [1e30, 28, 28]])
        elif kind == "dtype":
            item["datatype"] = rng.choice([
                "BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64",
                "UINT16", "UINT32", "UINT64", "FP16", "FP64", "BYTES",
                "BF16", "fp32", "FP32 ", "FP32\u0000"])
        else:
            params = rng.choice([
                {"classification": 10 ** 12}, {"classification": 10},
                {"classification": 11}, {"classification": 1},
                {"raw": False}, {"raw": True, "classification": 2},
                {"classification": 2 ** 63}, {"other": [1, {"a": None}]},
                {"classification": 3.0}, {"classification": "3"}])
            outs = [{"name": "label", "parameters": params}]
            if rng.random() < 0.3:
                outs.append({"name": "label"})
            doc["outputs"] = outs
        return json.dumps(doc).encode("utf-8")

    def replace_value(self, rng, doc):
        pool = [None, True, False, 0, -1, 1.5, 1e308, "x", "", [], {},
                [[]], [None], {"a": 1}, 2 ** 63, -2 ** 63 - 1,
                [0.5] * 1000, "FP32", [1, 28, 28]]
        # walk to a random container and replace one of its members
        node = doc
        for _ in range(rng.randint(1, 4)):
            if isinstance(node, dict) and node:
                key = rng.choice(list(node))
                if isinstance(node[key], (dict, list)) and node[key] and \
                        rng.random() < 0.7:
                    node = node[key]
                    continue
                node[key] = rng.choice(pool)
                break
            if isinstance(node, list) and node:
                i = rng.randrange(len(node))
                if isinstance(node[i], (dict, list)) and node[i] and \
                        rng.random() < 0.7:
                    node = node[i]
                    continue
                node[i] = rng.choice(pool)
                break
        return json.dumps(doc).encode("utf-8")

    def test_fuzzed_bodies_get_json_answers(self):
        rng = random.Random(self.SEED)
        images = bmstest.load_test_images()
        bases = [
            bmstest.infer_body(images[:1], [28, 28], req_id="fuzz"),
            bmstest.infer_body(images[1:3], [28, 28], nested=True,
                               outputs=[{"name": "label", "parameters":
                                         {"classification": 3}}]),
        ]
        client = self.server.client(timeout=30)
        failures = []
        counts = {}
        self.statuses = {}
        t0 = time.monotonic()
        try:
            for n in range(self.N_REQUESTS):
                kind, body = self.mutate(rng, bases)
                counts[kind] = counts.get(kind, 0) + 1
                problem = self.check_one(client, body)
                if problem:
                    failures.append((n, kind, problem, body))
                    client.close()
                    if len(failures) >= 20:
                        break
        finally:
            client.close()
        elapsed = time.monotonic() - t0
        print("\nfuzz: %d requests in %.1f s, seed %d, %s; statuses %s"
              % (sum(counts.values()), elapsed, self.SEED,
                 " ".join("%s=%d" % kv for kv in sorted(counts.items())),
                 " ".join("%d=%d" % kv
                          for kv in sorted(self.statuses.items()))))
        if failures:
            path = tempfile.mktemp(prefix="bms-fuzz-", suffix=".txt")
            with open(path, "wb") as f:
                for n, kind, problem, body in failures:
                    f.write(b"--- %d %s %s\n" % (n, kind.encode(),
                                                 problem.encode()))
                    f.write(body + b"\n")
            self.fail("%d fuzzed bodies got a bad answer (bodies in %s): %s"
                      % (len(failures), path,
                         "; ".join("#%d %s: %s" % (n, k, p)
                                   for n, k, p, _ in failures[:5])))
        self.assertLess(elapsed, 120)
        self.assertTrue(self.server.alive())
        self.assert_alive()

    def check_one(self, client, body):
        try:
            resp = client.post(INFER, body)
        except Exception as exc:
            return "no response: %r" % exc
        self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
        if not (resp.status == 200 or 400 <= resp.status < 500):
            return "status %d: %r" % (resp.status, resp.body[:200])
        try:
            doc = json.loads(resp.body.decode("utf-8"))
        except ValueError as exc:
            return "status %d, body not JSON (%s): %r" % (
                resp.status, exc, resp.body[:200])
        if resp.status == 200:
            if not isinstance(doc, dict) or "outputs" not in doc:
                return "200 without outputs: %r" % resp.body[:200]
        elif not isinstance(doc, dict) or \
                not isinstance(doc.get("error"), str):
            return "status %d without an error string: %r" % (
                resp.status, resp.body[:200])
        return None

    def raw_exchange(self, data, close_early=False, allowed=()):
        """Send raw bytes; the answer must be a 4xx (or a status in
        allowed) or a plain close."""
        sock = bmstest.raw_connect(self.server.port, timeout=15)
        try:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                return None
            if close_early:
                return None
            got = bmstest.raw_read_response(sock, timeout=15)
        except socket.timeout:
            self.fail("no answer and no close within 15 s for %r"
                      % data[:80])
        finally:
            sock.close()
        if got is not None:
            self.assertTrue(400 <= got[0] < 500 or got[0] in allowed,
                            "%r -> %d %r"
                            % (data[:80], got[0], got[2][:200]))
        return got

    def test_raw_garbage_on_sockets(self):
        cases = [
            b"GARBAGE\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /v2/health/live HTTP/9.9\r\nHost: x\r\n\r\n",
            b"\xff\xfe" * 1000 + b"\r\n\r\n",
            b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Big: " +
            b"b" * 200000 + b"\r\n\r\n",
            b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n" +
            b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n",
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"
            % INFER.encode(),
            b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
            % INFER.encode(),
            b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
            b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" % INFER.encode(),
        ]
        for data in cases:
            with self.subTest(data=data[:60]):
                # 505 is the right answer to an HTTP version it lacks
                self.raw_exchange(data, allowed=(505,))
                self.assertTrue(self.server.alive())
        self.assert_alive()

    def test_nul_request_line_does_not_block_others(self):
        # A NUL byte in the request line is not refused at once: the
        # connection is held until the connection timeout.  Others must be
        # served meanwhile.
        socks = []
        try:
            for _ in range(8):
                sock = bmstest.raw_connect(self.server.port)
                sock.sendall(b"\x00\xff\xfe" * 1000 + b"\r\n\r\n")
                socks.append(sock)
            t0 = time.monotonic()
            self.assert_alive()
            self.assertLess(time.monotonic() - t0, 5)
        finally:
            for sock in socks:
                sock.close()

    def test_clients_that_disconnect_mid_request(self):
        body = bmstest.infer_body(bmstest.load_test_images()[:4], [28, 28])
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (INFER, len(body))).encode("ascii")
        for i in range(20):
            cut = (i + 1) * len(body) // 25
            self.raw_exchange(head + body[:cut], close_early=True)
        for i in range(10):
            self.raw_exchange(head[:(i + 1) * len(head) // 12],
                              close_early=True)
        time.sleep(0.2)
        self.assertTrue(self.server.alive())
        self.assert_alive()

    def test_pipelined_requests_answered_in_order(self):
        sock = bmstest.raw_connect(self.server.port, timeout=15)
        try:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                         b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n")
            first = bmstest.raw_read_response(sock)
            self.assertIsNotNone(first)
            self.assertEqual((first[0], json.loads(first[2])),
                             (200, {"live": True}))
        finally:
            sock.close()

    def test_zz_stops_cleanly(self):
        self.server.stop()


if __name__ == "__main__":
    unittest.main()

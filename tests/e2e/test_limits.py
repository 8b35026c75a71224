"""
The request limits of `bms serve`, each over HTTP against a server started
with a small value: body size (--max-body-size, also spelt
--max-body-bytes) 413 naming the limit; header size (--max-header-bytes)
431 from the HTTP library, 414 for a long request line, while bodies far
larger than the header limit still pass; tensor elements (--max-elements,
default 64 Mi) 413 naming the count and the limit, decided from "shape"
before any data; request time (--max-request-ms) 504 even when the
client's Timeout-Ms asks for longer.  Out-of-range flag values are usage
errors (exit status 2).
"""

import json
import shutil
import subprocess
import tempfile
import unittest

import bmstest

MODEL = "fashion_mlp"


def run_serve(args, timeout=30):
    """Run bms serve to its exit (a refused start); (status, stderr)."""
    data_dir = tempfile.mkdtemp(prefix="bms-e2e-limits-data-")
    try:
        proc = subprocess.run(
            [bmstest.BMS_BIN, "serve", "--model-repository", bmstest.MODELS,
             "--http-port", "0", "--data-dir", data_dir] + args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=timeout)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def shape_body(shape, data="[0]"):
    return ('{"inputs": [{"name": "image", "datatype": "FP32", '
            '"shape": %s, "data": %s}]}' % (json.dumps(shape), data))


def raw_get(port, head_lines, path="/v2/health/live"):
    """GET path with extra header lines on a fresh socket; the response
    as (status, headers, body), or None when closed unanswered."""
    sock = bmstest.raw_connect(port)
    try:
        sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % path)
                     .encode() + b"".join(l + b"\r\n" for l in head_lines)
                     + b"\r\n")
        return bmstest.raw_read_response(sock)
    finally:
        sock.close()


class _LimitCase(unittest.TestCase):
    ARGS = []

    @classmethod
    def setUpClass(cls):
        cls.server = bmstest.Server(extra_args=cls.ARGS)
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            raise
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.cleanup()

    def assert_error(self, resp, status, message):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.json(), {"error": message})


class BodyLimitTest(_LimitCase):
    ARGS = ["--max-body-bytes", "1000"]

    def test_body_over_the_limit_is_413_naming_it(self):
        body = shape_body([1, 28, 28], "[" + ",".join(["0"] * 784) + "]")
        self.assertGreater(len(body), 1000)
        resp = self.client.infer(MODEL, body)
        self.assert_error(resp, 413,
                          "body: larger than the limit of 1000 bytes")

    def test_body_at_the_limit_is_read(self):
        # A body of exactly 1000 bytes reaches the parser (400 for the
        # element count, not 413).
        body = shape_body([1, 28, 28])
        body = body[:-1] + " " * (1000 - len(body)) + "}"
        self.assertEqual(len(body), 1000)
        resp = self.client.infer(MODEL, body)
        self.assertEqual(resp.status, 400, resp)


class HeaderLimitTest(_LimitCase):
    ARGS = ["--max-header-bytes", "8192"]

    def test_headers_under_the_limit_are_answered(self):
        resp = raw_get(self.server.port, [b"X-Pad: " + b"a" * 6000])
        self.assertIsNotNone(resp)
        self.assertEqual(resp[0], 200)

    def test_headers_over_the_limit_are_431(self):
        resp = raw_get(self.server.port, [b"X-Pad: " + b"a" * 10000])
        self.assertIsNotNone(resp)
        status, headers, _ = resp
        self.assertEqual(status, 431)
        self.assertEqual(headers.get("connection"), "close")
        # Many small headers count the same as one large one.
        resp = raw_get(self.server.port,
                       [b"X-H%d: %s" % (i, b"b" * 60) for i in range(200)])
        self.assertEqual(resp[0], 431)
        self.assertTrue(self.server.alive())

    def test_request_line_over_the_limit_is_414(self):
        resp = raw_get(self.server.port, [],
                       path="/v2/health/live?" + "q" * 10000)
        self.assertIsNotNone(resp)
        self.assertEqual(resp[0], 414)

    def test_bodies_larger_than_the_header_limit_pass(self):
        images = bmstest.load_test_images()[:16]
        body = bmstest.infer_body(images, [28, 28])
        self.assertGreater(len(body), 100000)
        resp = self.client.infer(MODEL, body)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         bmstest.model_reference(MODEL)[:16])


class ElementLimitTest(_LimitCase):
    ARGS = ["--max-elements", "1000"]

    def test_tensor_over_the_limit_is_413_with_count_and_limit(self):
        # 2 x 28 x 28 = 1568 elements.
        resp = self.client.infer(MODEL, shape_body([2, 28, 28]))
        self.assert_error(resp, 413, "inputs[0].shape: 1568 elements, more "
                          "than the limit of 1000")

    def test_shape_decides_before_the_data(self):
        # The data is one element, the shape claims 78,400,000: refused
        # for the shape, not for the count mismatch.
        resp = self.client.infer(MODEL, shape_body([100000, 28, 28]))
        self.assert_error(resp, 413, "inputs[0].shape: 78400000 elements, "
                          "more than the limit of 1000")

    def test_tensor_under_the_limit_is_served(self):
        images = bmstest.load_test_images()[:1]
        resp = self.client.infer(MODEL, bmstest.infer_body(images, [28, 28]))
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"],
                         bmstest.model_reference(MODEL)[:1])


class DefaultElementLimitTest(_LimitCase):
    ARGS = []

    def test_default_limit_is_64_mi_elements(self):
        # 100000 x 28 x 28 = 78,400,000 > 2^26 = 67,108,864.
        resp = self.client.infer(MODEL, shape_body([100000, 28, 28]))
        self.assert_error(resp, 413, "inputs[0].shape: 78400000 elements, "
                          "more than the limit of 67108864")


class RequestTimeLimitTest(unittest.TestCase):
    """A request that cannot finish in 1 ms (a 3 MB body to parse) is 504
    under --max-request-ms 1 even with Timeout-Ms: 600000, and 200 on a
    server without the cap."""

    N_IMAGES = 256

    @classmethod
    def setUpClass(cls):
        images = bmstest.load_test_images()[:cls.N_IMAGES]
        cls.body = bmstest.infer_body(images, [28, 28])
        cls.reference = bmstest.model_reference(MODEL)[:cls.N_IMAGES]

    def infer_on(self, args):
        server = bmstest.Server(extra_args=args)
        try:
            server.start()
            client = server.client()
            resp = client.request("POST", "/v2/models/%s/infer" % MODEL,
                                  self.body, {"Timeout-Ms": "600000"})
            client.close()
            return resp
        finally:
            server.cleanup()

    def test_capped_deadline_is_504(self):
        resp = self.infer_on(["--max-request-ms", "1"])
        self.assertEqual(resp.status, 504, resp)
        self.assertEqual(resp.json(), {"error": "deadline passed before the "
                                                "model answered"})

    def test_same_request_without_the_cap_is_served(self):
        resp = self.infer_on([])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["outputs"][0]["data"], self.reference)


class LimitFlagTest(unittest.TestCase):

    def test_out_of_range_values_are_usage_errors(self):
        for flag, value in [("--max-header-bytes", "100"),
                            ("--max-header-bytes", "99999999999"),
                            ("--max-elements", "0"),
                            ("--max-request-ms", "0"),
                            ("--max-request-ms", "abc"),
                            ("--max-body-bytes", "0")]:
            status, err = run_serve([flag, value])
            self.assertEqual(status, 2, (flag, value, err))
            self.assertIn(flag[2:], err)


if __name__ == "__main__":
    unittest.main()

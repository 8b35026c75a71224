"""
HTTPS: `bms serve --tls-cert FILE --tls-key FILE` with a self-signed pair
made here by the openssl command (in a temporary folder).  Inference over
HTTPS trusting only that certificate gives PyTorch's classes; plain HTTP
on the same port gets no answer; a client that does not trust the
certificate is refused; a missing file, one flag without the other, a
file that is not a certificate and a key of another pair are refused at
start with exit status 1 (2 for the flags) and a message naming the file.
"""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

import bmstest

MODEL = "fashion_mlp"
N_IMAGES = 8


def make_pair(folder, stem, cn="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    cert = os.path.join(folder, stem + "-cert.pem")
    key = os.path.join(folder, stem + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def run_serve(args, timeout=30):
    """Run bms serve to its exit (a refused start); (status, stderr)."""
    data_dir = tempfile.mkdtemp(prefix="bms-e2e-tls-data-")
    try:
        proc = subprocess.run(
            [bmstest.BMS_BIN, "serve", "--model-repository", bmstest.MODELS,
             "--http-port", "0", "--data-dir", data_dir] + args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, timeout=timeout)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class TlsServeTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bms-e2e-tls-")
        cls.cert, cls.key = make_pair(cls.tmp, "good")
        cls.other_cert, cls.other_key = make_pair(cls.tmp, "other")
        cls.server = bmstest.Server(extra_args=["--tls-cert", cls.cert,
                                                "--tls-key", cls.key])
        try:
            cls.server.start()
        except BaseException:
            cls.server.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise
        cls.context = ssl.create_default_context(cafile=cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_listening_line_says_https(self):
        lines = [l for l in self.server.log_lines if 'msg="listening"' in l]
        self.assertEqual(len(lines), 1, self.server.log())
        self.assertIn("scheme=https", lines[0])

    def test_infer_over_https_gives_the_reference_classes(self):
        images = bmstest.load_test_images()[:N_IMAGES]
        reference = bmstest.model_reference(MODEL)[:N_IMAGES]
        client = self.server.client(ssl_context=self.context)
        try:
            body = bmstest.infer_body(images, [28, 28])
            resp = client.infer(MODEL, body)
            self.assertEqual(resp.status, 200, resp)
            out = resp.json()["outputs"][0]
            self.assertEqual(out["data"], reference)
            self.assertEqual(len(resp.request_id or ""), 16)
            # The connection is kept alive over TLS too.
            self.assertEqual(client.get("/v2/health/ready").status, 200)
            self.assertEqual(client.n_connects, 1)
        finally:
            client.close()

    def test_plain_http_to_the_tls_port_gets_no_http_answer(self):
        sock = bmstest.raw_connect(self.server.port, timeout=5)
        try:
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n")
            data = b""
            try:
                while True:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        finally:
            sock.close()
        self.assertFalse(data.startswith(b"HTTP/"), data[:80])
        self.assertTrue(self.server.alive())

    def test_a_client_trusting_another_certificate_is_refused(self):
        context = ssl.create_default_context(cafile=self.other_cert)
        client = self.server.client(timeout=10, ssl_context=context)
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                client.get("/v2/health/live")
        finally:
            client.close()
        self.assertTrue(self.server.alive())

    def test_mismatched_key_is_refused_at_start(self):
        status, err = run_serve(["--tls-cert", self.cert,
                                 "--tls-key", self.other_key])
        self.assertEqual(status, 1, err)
        self.assertIn("does not match the certificate", err)
        self.assertIn(self.other_key, err)

    def test_missing_file_is_refused_at_start(self):
        missing = os.path.join(self.tmp, "missing.pem")
        status, err = run_serve(["--tls-cert", missing, "--tls-key",
                                 self.key])
        self.assertEqual(status, 1, err)
        self.assertIn("tls_cert '%s': No such file or directory" % missing,
                      err)

    def test_key_file_as_certificate_is_refused_at_start(self):
        status, err = run_serve(["--tls-cert", self.key, "--tls-key",
                                 self.key])
        self.assertEqual(status, 1, err)
        self.assertIn("tls_cert '%s': not a PEM certificate" % self.key, err)

    def test_certificate_as_key_is_refused_at_start(self):
        status, err = run_serve(["--tls-cert", self.cert, "--tls-key",
                                 self.cert])
        self.assertEqual(status, 1, err)
        self.assertIn("tls_key '%s': not a usable PEM private key"
                      % self.cert, err)

    def test_one_flag_without_the_other_is_a_usage_error(self):
        status, err = run_serve(["--tls-cert", self.cert])
        self.assertEqual(status, 2, err)
        self.assertIn("--tls-cert given without --tls-key", err)
        status, err = run_serve(["--tls-key", self.key])
        self.assertEqual(status, 2, err)
        self.assertIn("--tls-key given without --tls-cert", err)


if __name__ == "__main__":
    unittest.main()

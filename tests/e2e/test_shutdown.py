"""
Stopping the server under load: SIGTERM (and SIGINT) while about twenty
requests are in flight on separate connections.  The server must exit 0
within a few seconds, and the request records it leaves must be exactly
the requests that got a response.
"""

import signal
import threading
import time
import unittest

import bmstest

N_CLIENTS = 20
EXIT_WITHIN_S = 5.0


class ShutdownTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        images = bmstest.load_test_images()
        # batches big enough to be caught in flight, small enough that
        # twenty of them finish well within EXIT_WITHIN_S on two cores
        cls.bodies = {
            "fashion_cnn": bmstest.infer_body(images[:16], [1, 28, 28]),
            "fashion_mlp": bmstest.infer_body(images[:64], [28, 28]),
        }

    def run_load_and_stop(self, sig):
        server = bmstest.Server()
        server.start()
        try:
            self.check_stop_under_load(server, sig)
        finally:
            server.cleanup()

    def check_stop_under_load(self, server, sig):
        lock = threading.Lock()
        answered = []          # (X-Request-Id, status, bytes in, out)
        in_flight = [0]
        stop = threading.Event()
        started = threading.Barrier(N_CLIENTS + 1)

        def loop(k):
            model = "fashion_cnn" if k % 4 else "fashion_mlp"
            body = self.bodies[model]
            client = server.client(timeout=30)
            started.wait()
            try:
                while not stop.is_set():
                    with lock:
                        in_flight[0] += 1
                    try:
                        resp = client.infer(model, body)
                    except Exception:
                        return   # the server went away: expected
                    finally:
                        with lock:
                            in_flight[0] -= 1
                    with lock:
                        answered.append((resp.request_id, resp.status,
                                         len(body), len(resp.body)))
            finally:
                client.close()

        threads = [threading.Thread(target=loop, args=(k,), daemon=True)
                   for k in range(N_CLIENTS)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(1.5)
        with lock:
            n_in_flight = in_flight[0]
            n_before = len(answered)
        t0 = time.monotonic()
        server.send_signal(sig)
        rc = server.wait(timeout=15)
        exit_s = time.monotonic() - t0
        stop.set()
        for t in threads:
            t.join(30)
        print("\nsignal %d: %d answered before, %d in flight, exit %d after "
              "%.2f s, %d answered in all"
              % (sig, n_before, n_in_flight, rc, exit_s, len(answered)))

        self.assertFalse(server.killed, "ignored signal %d:\n%s"
                         % (sig, server.log()))
        self.assertEqual(rc, 0, server.log())
        self.assertLess(exit_s, EXIT_WITHIN_S)
        self.assertGreater(n_before, 0)
        self.assertGreaterEqual(n_in_flight, N_CLIENTS // 2,
                                "too few requests in flight to test")

        records = server.records()
        got = sorted((r["id"], r["http_status"], r["bytes_in"],
                      r["bytes_out"]) for r in records)
        want = sorted(answered)
        self.assertEqual(len(got), len(want), "%d records, %d responses"
                         % (len(got), len(want)))
        self.assertEqual(got, want)
        for r in records:
            want_outcome = "ok" if r["http_status"] == 200 else \
                "client_error" if r["http_status"] < 500 else "server_error"
            self.assertEqual(r["outcome"], want_outcome, r)

    def test_sigterm_under_load(self):
        self.run_load_and_stop(signal.SIGTERM)

    def test_sigint_under_load(self):
        self.run_load_and_stop(signal.SIGINT)

    def test_sigterm_when_idle(self):
        server = bmstest.Server()
        server.start()
        try:
            client = server.client()
            resp = client.get("/v2/health/live")
            self.assertEqual(resp.status, 200)
            # an idle keep-alive connection must not hold the exit back
            t0 = time.monotonic()
            server.stop()
            self.assertLess(time.monotonic() - t0, EXIT_WITHIN_S)
            client.close()
            self.assertEqual(server.records(), [])
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()

"""The agent while its server is down (docs/agent.md "While the server is down").

Cached tokens keep being served at once; a miss waits a bounded time and gets IMDS's transient
500; the agent's loops never wait on the authority, so other requests answer while a miss is
pending; and when the server is back on the same port, new tokens work without restarting the
agent."""
import signal
import socket
import threading
import time

from harness import MivaultTest, wait_port

RESOURCE = "https://vault.azure.net"


class AgentOutageTest(MivaultTest):
    def test_server_killed_then_back(self):
        e = self.env
        vm = e.vm("vm1")
        _, port = e.start_agent("vm1", join=vm["joinToken"])
        warm = e.token(port, RESOURCE)

        e.server.send_signal(signal.SIGKILL)
        e.server.wait()

        # cached: served at once, the same token
        t = time.time()
        self.assertEqual(e.token(port, RESOURCE), warm)
        self.assertLess(time.time() - t, 1.0)

        # a miss while nothing listens: a bounded wait, then IMDS's transient error
        t = time.time()
        r = e.imds(port, "https://other.example")
        self.assertLess(time.time() - t, 5.0)
        self.assertEqual(r.status, 500, r.body)
        self.assertEqual(r.json()["error"], "unknown")

        # a server that accepts and never answers: the miss is pending for a while ...
        hole = socket.socket()
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", e.server_port))
        hole.listen(16)
        try:
            result = {}

            def miss():
                t0 = time.time()
                result["r"] = e.imds(port, "https://pending.example")
                result["t"] = time.time() - t0

            th = threading.Thread(target=miss)
            th.start()
            time.sleep(0.3)
            # ... and meanwhile every loop answers: metadata, and the cached token
            for _ in range(10):
                t = time.time()
                r = e.imds(port, path="/metadata/instance", query={"api-version": "2021-02-01"})
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(e.token(port, RESOURCE), warm)
                self.assertLess(time.time() - t, 1.0)
            th.join(30)
            self.assertEqual(result["r"].status, 500, result["r"].body)
            self.assertGreater(result["t"], 1.0)
            self.assertLess(result["t"], 6.0)
        finally:
            hole.close()

        # the server comes back on the same port: new tokens, no agent restart
        e.start_server()
        deadline = time.time() + 20
        while True:
            r = e.imds(port, "https://back.example")
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(e.token(port, RESOURCE), warm)


class StopTest(MivaultTest):
    """SIGTERM stops the server and the agent cleanly (exit 0), after their background threads
    (the agent's token fetchers, the server's writer and checkpointer) have started. Before the
    signals were blocked in every thread, the kernel could hand SIGTERM to one of those threads
    and the process died on the spot (exit -15), with no last checkpoint."""

    def test_sigterm_is_a_clean_stop(self):
        e = self.env
        vm = e.vm("vm1")
        join = vm["joinToken"]
        for _ in range(3):  # the thread the kernel picks varies: a few rounds
            agent, port = e.start_agent("vm1", join=join)
            join = None  # remembered by the agent after the first start
            self.assertTrue(e.token(port, e.vault_resource()))
            agent.send_signal(signal.SIGTERM)
            self.assertEqual(agent.wait(30), 0)
        e.server.send_signal(signal.SIGTERM)
        self.assertEqual(e.server.wait(30), 0)

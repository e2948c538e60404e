"""The AMQP topology file (<data-dir>/amqp-topology.json, docs/amqp.md "Durability") goes
through the log's file layer and follows the log's rule: a file that exists but cannot be
read refuses the start (it used to be taken as missing, and the durable topology vanished at
the next save); a failed write stops the server with status 1 before declare-ok is sent (it
used to be logged after the client already had declare-ok). A full disk refuses the durable
change instead: the method gets 506 RESOURCE_ERROR naming the file, the topology is as it was,
and the server goes on."""

import os
import tempfile
import unittest

import pika

from amqp_target import ON_RABBITMQ
from harness import (ConveyorTestCase, free_port, free_port_outside_ephemeral_range,
                     run_conveyor)


@unittest.skipIf(ON_RABBITMQ, "Conveyor's topology file")
class TopologyFileTest(ConveyorTestCase):
    start_server = False
    case_timeout = 60.0

    def test_unreadable_topology_file_refuses_to_start(self):
        data = tempfile.mkdtemp(prefix="conveyor-topo-")
        os.makedirs(os.path.join(data, "amqp-topology.json"))  # read() fails with EISDIR
        code, out = run_conveyor("server", "--port", str(free_port()), "--amqp-port",
                                 str(free_port()), "--data-dir", data)
        self.assertEqual(code, 1, out)
        self.assertIn("cannot read " + os.path.join(data, "amqp-topology.json"), out)

    def test_topology_file_without_read_permission_refuses_to_start(self):
        # EACCES (as user nobody: root reads every file); it used to be taken as no file.
        data = tempfile.mkdtemp(prefix="conveyor-topo-")
        path = os.path.join(data, "amqp-topology.json")
        with open(path, "w") as f:
            f.write('{"exchanges": [], "queues": [], "bindings": []}')
        os.chmod(path, 0)
        os.chmod(data, 0o777)
        code, out = run_conveyor("server", "--port", str(free_port()), "--amqp-port",
                                 str(free_port()), "--data-dir", data,
                                 prefix=["setpriv", "--reuid=65534", "--regid=65534",
                                         "--clear-groups"])
        self.assertEqual(code, 1, out)
        self.assertIn("cannot read " + path + ": Permission denied", out)

    def test_failed_write_stops_the_server_before_declare_ok(self):
        server = self.start_conveyor("--enable-debug-command", "yes", amqp=True,
                                     port=free_port_outside_ephemeral_range())
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        conn.channel().queue_declare("kept", durable=True)
        conn.close()
        c = server.client()
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "EIO-WRITE"), "OK")
        c.close()
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        with self.assertRaises(pika.exceptions.AMQPError):
            conn.channel().queue_declare("lost", durable=True)
        self.assertEqual(server.wait_exit(10.0), 1, "the server must exit with status 1")
        self.assertIn("amqp-topology.json failed (Input/output error)", server.log_text())
        server.restart(bind_wait=10.0)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        self.addCleanup(conn.close)
        ch = conn.channel()
        ch.queue_declare("kept", durable=True, passive=True)


    def test_full_disk_refuses_durable_declare_with_506_until_space_returns(self):
        server = self.start_conveyor("--enable-debug-command", "yes", amqp=True,
                                     port=free_port_outside_ephemeral_range())
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        conn.channel().queue_declare("kept", durable=True)
        c = server.client()
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("refused", durable=True)
        self.assertEqual(refused.exception.reply_code, 506)
        path = os.path.join(server.data_dir, "amqp-topology.json")
        self.assertIn("RESOURCE_ERROR - cannot write " + path + ": No space left on device",
                      refused.exception.reply_text)
        # Rolled back: the queue is not declared, and the connection and server go on.
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as missing:
            conn.channel().queue_declare("refused", passive=True)
        self.assertEqual(missing.exception.reply_code, 404)
        # A non-durable declare writes nothing: still answered.
        conn.channel().queue_declare("transient", durable=False)
        conn.close()
        self.assertTrue(server.is_running(), server.log_text())

        server.restart(bind_wait=10.0)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        conn.channel().queue_declare("kept", durable=True, passive=True)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as after_restart:
            conn.channel().queue_declare("refused", passive=True)
        self.assertEqual(after_restart.exception.reply_code, 404)
        conn.close()

        # The restart cleared the fault; arm it again, then clear it: accepted again.
        c = server.client()
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "DISK-FULL"), "OK")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
            conn.channel().queue_declare("refused", durable=True)
        self.assertEqual(c.execute_command("DEBUG", "LOG-FAULT", "OFF"), "OK")
        conn.channel().queue_declare("refused", durable=True)
        conn.close()
        c.close()
        server.restart(bind_wait=10.0)
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.amqp_port))
        self.addCleanup(conn.close)
        conn.channel().queue_declare("refused", durable=True, passive=True)


if __name__ == "__main__":
    unittest.main()

"""queue.declare arguments (docs/amqp.md, "Queue arguments"), with pika, run against Conveyor
(the default) and against rabbitmq-server (CONVEYOR_AMQP_TARGET=rabbitmq; ctest's
integration_rabbitmq.test_amqp_queue_args) with the same assertions where both brokers agree.
Where they differ on purpose the case says so and asserts each broker's own answer:

- an `x-` argument Conveyor does not implement is refused with 406 PRECONDITION_FAILED naming
  it (the channel is closed); RabbitMQ ignores an `x-` name it does not know (`x-foo`) and,
  on one node, accepts `x-queue-type: quorum`.
- `x-queue-type: classic` and the implemented arguments are accepted by both.
"""

import pika
import pika.exceptions

from amqp_target import ON_RABBITMQ, AmqpTestCase, conveyor_only


class QueueArgumentsTest(AmqpTestCase):

    def declare(self, arguments, durable=False, name=None):
        """queue.declare on a fresh channel: (queue name, None) when declared, (name,
        ChannelClosedByBroker) when refused; the connection stays usable either way."""
        conn = self.connect()
        ch = conn.channel()
        name = name or self.qname()
        try:
            ch.queue_declare(name, durable=durable, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as e:
            self.assertTrue(conn.is_open, "a refused argument closes the channel only")
            return name, e
        self.addCleanup(self.delete_quietly, name)
        return name, None

    def delete_quietly(self, name):
        conn = self.connect()
        conn.channel().queue_delete(name)
        conn.close()

    def assertRefused(self, error, argument):
        self.assertIsNotNone(error, f"{argument} was accepted")
        self.assertEqual(error.reply_code, 406, error.reply_text)
        self.assertTrue(error.reply_text.startswith("PRECONDITION_FAILED - "), error.reply_text)
        self.assertIn(f"'{argument}'", error.reply_text)

    def assertUsable(self, name):
        """The declared queue takes a message and gives it back."""
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", name, b"m1")
        method, _, body = ch.basic_get(name, auto_ack=True)
        self.assertIsNotNone(method)
        self.assertEqual(body, b"m1")

    # ---- accepted by both ----------------------------------------------------------------

    def test_implemented_arguments_are_accepted(self):
        for args in ({"x-max-priority": 5}, {"x-message-ttl": 60000}, {"x-expires": 600000},
                     {"x-queue-type": "classic"},
                     {"x-queue-type": "classic", "x-max-priority": 3, "x-message-ttl": 1000,
                      "x-expires": 60000}):
            name, error = self.declare(args)
            self.assertIsNone(error, f"{args}: {error}")
            self.assertUsable(name)

    def test_arguments_without_the_x_prefix_are_ignored(self):
        name, error = self.declare({"foo": "bar", "priority": 1})
        self.assertIsNone(error, error)
        self.assertUsable(name)

    def test_classic_redeclared_with_the_same_arguments(self):
        args = {"x-queue-type": "classic", "x-message-ttl": 5000}
        name, error = self.declare(args, durable=True)
        self.assertIsNone(error, error)
        _, again = self.declare(args, durable=True, name=name)
        self.assertIsNone(again, again)

    def test_an_invalid_queue_type_value_is_refused(self):
        # Both refuse a type that is not a queue type at all.
        _, error = self.declare({"x-queue-type": "no-such-type"}, durable=True)
        self.assertRefused(error, "x-queue-type")
        self.assertIn("\"unsupported queue type 'no-such-type'\"", error.reply_text)

    # ---- where Conveyor differs ----------------------------------------------------------

    def test_quorum_and_stream_queues(self):
        for queue_type in ("quorum", "stream"):
            name, error = self.declare({"x-queue-type": queue_type}, durable=True)
            if ON_RABBITMQ:
                # A single RabbitMQ node accepts both (durable, non-exclusive).
                self.assertIsNone(error, f"{queue_type}: {error}")
            else:
                self.assertRefused(error, "x-queue-type")
                self.assertIn(f"'{queue_type}'", error.reply_text)
                self.assertIn("not implemented by Conveyor", error.reply_text)
                self.assertNoQueue(name)

    @conveyor_only("restarts the server")
    def test_max_length_and_overflow_survive_a_restart(self):
        args = {"x-max-length": 1, "x-overflow": "reject-publish"}
        name, error = self.declare(args, durable=True)
        self.assertIsNone(error, error)
        self.server.restart(bind_wait=10.0)
        _, error = self.declare({"x-max-length": 2}, durable=True, name=name)
        self.assertRefused(error, "x-max-length")
        self.assertEqual(self.publish_all(name, [b"m1", b"m2"]), [True, False])
        self.assertEqual(self.get_all(name), [b"m1"])

    def test_unimplemented_x_arguments(self):
        # Known RabbitMQ arguments Conveyor does not implement, and a name nobody knows.
        for args in ({"x-queue-mode": "lazy"}, {"x-queue-master-locator": "client-local"},
                     {"x-foo": "bar"}, {"x-max-priority": 5, "x-foo": 1}):
            argument = next(k for k in args if k not in ("x-max-priority",))
            name, error = self.declare(args)
            if ON_RABBITMQ:
                self.assertIsNone(error, f"RabbitMQ ignores {argument}: {error}")
            else:
                self.assertRefused(error, argument)
                self.assertIn("not implemented by Conveyor", error.reply_text)
                self.assertNoQueue(name)

    def test_a_refused_redeclaration_leaves_the_queue_as_it_was(self):
        name, error = self.declare({"x-message-ttl": 60000})
        self.assertIsNone(error, error)
        _, again = self.declare({"x-message-ttl": 60000, "x-foo": "bar"}, name=name)
        if ON_RABBITMQ:
            self.assertIsNone(again, again)
        else:
            self.assertRefused(again, "x-foo")
        self.assertUsable(name)

    # ---- x-max-length and x-overflow -----------------------------------------------------

    def publish_all(self, name, bodies):
        """Publishes under confirms; a list of True (acked) / False (nacked) per message."""
        conn = self.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        out = []
        for body in bodies:
            try:
                ch.basic_publish("", name, body)
                out.append(True)
            except pika.exceptions.NackError:
                out.append(False)
        return out

    def get_all(self, name, ch=None, auto_ack=True):
        if ch is None:
            ch = self.connect().channel()
        out = []
        while True:
            method, _, body = ch.basic_get(name, auto_ack=auto_ack)
            if method is None:
                return out
            out.append(body)

    def test_max_length_drop_head_drops_the_oldest_ready_message(self):
        for args in ({"x-max-length": 2}, {"x-max-length": 2, "x-overflow": "drop-head"}):
            name, error = self.declare(args)
            self.assertIsNone(error, error)
            self.assertEqual(self.publish_all(name, [b"m1", b"m2", b"m3", b"m4"]), [True] * 4)
            self.assertEqual(self.get_all(name), [b"m3", b"m4"])

    def test_max_length_reject_publish_nacks_under_confirms(self):
        name, error = self.declare({"x-max-length": 2, "x-overflow": "reject-publish"})
        self.assertIsNone(error, error)
        self.assertEqual(self.publish_all(name, [b"m1", b"m2", b"m3"]), [True, True, False])
        self.assertEqual(self.get_all(name), [b"m1", b"m2"])
        self.assertEqual(self.publish_all(name, [b"m4"]), [True])  # room again
        self.assertEqual(self.get_all(name), [b"m4"])

    def test_max_length_counts_ready_messages_not_unacknowledged_ones(self):
        for overflow in ("drop-head", "reject-publish"):
            name, error = self.declare({"x-max-length": 1, "x-overflow": overflow})
            self.assertIsNone(error, error)
            self.assertEqual(self.publish_all(name, [b"m1"]), [True])
            conn = self.connect()
            ch = conn.channel()
            method, _, body = ch.basic_get(name, auto_ack=False)
            self.assertEqual(body, b"m1")
            # m1 is unacknowledged: the queue holds no ready message, so m2 fits.
            self.assertEqual(self.publish_all(name, [b"m2"]), [True], overflow)
            ch.basic_ack(method.delivery_tag)
            self.assertEqual(self.get_all(name), [b"m2"], overflow)

    def test_max_length_zero_with_reject_publish_refuses_every_message(self):
        name, error = self.declare({"x-max-length": 0, "x-overflow": "reject-publish"})
        self.assertIsNone(error, error)
        self.assertEqual(self.publish_all(name, [b"m1", b"m2"]), [False, False])
        self.assertEqual(self.get_all(name), [])

    def test_invalid_max_length_and_overflow_values(self):
        _, error = self.declare({"x-max-length": -1})
        self.assertRefused(error, "x-max-length")
        self.assertIn("{value_negative,-1}", error.reply_text)
        _, error = self.declare({"x-max-length": 1, "x-overflow": "sideways"})
        self.assertRefused(error, "x-overflow")

    def test_max_length_redeclared_differently_is_inequivalent(self):
        name, error = self.declare({"x-max-length": 5})
        self.assertIsNone(error, error)
        _, error = self.declare({"x-max-length": 6}, name=name)
        self.assertRefused(error, "x-max-length")
        self.assertIn("inequivalent arg", error.reply_text)

    def test_max_length_bytes(self):
        name, error = self.declare({"x-max-length-bytes": 1000})
        if ON_RABBITMQ:
            self.assertIsNone(error, error)
        else:  # not implemented (yet): refused rather than ignored
            self.assertRefused(error, "x-max-length-bytes")
            self.assertIn("not implemented by Conveyor", error.reply_text)

    # ---- x-single-active-consumer --------------------------------------------------------

    def consume_into(self, name, got, tag):
        """A consumer on its own connection that records (tag, body) and acks; returns the
        connection (closing it ends the consumer)."""
        conn = self.connect()
        ch = conn.channel()
        ch.basic_qos(prefetch_count=1)

        def on_message(channel, method, _props, body):
            got.append((tag, body))
            channel.basic_ack(method.delivery_tag)

        ch.basic_consume(name, on_message, consumer_tag=tag)
        return conn

    @staticmethod
    def drive(conns, seconds=0.3):
        for c in conns:
            if c.is_open:
                c.process_data_events(time_limit=seconds)

    def drive_until(self, conns, predicate, seconds=10.0):
        import time
        deadline = time.monotonic() + seconds
        while not predicate() and time.monotonic() < deadline:
            self.drive(conns, 0.05)
        self.assertTrue(predicate())

    def test_single_active_consumer_only_one_receives_then_the_next_takes_over(self):
        name, error = self.declare({"x-single-active-consumer": True})
        self.assertIsNone(error, error)
        got = []
        first = self.consume_into(name, got, "c1")
        second = self.consume_into(name, got, "c2")
        self.assertEqual(self.publish_all(name, [b"m%d" % i for i in range(6)]), [True] * 6)
        self.drive_until([first, second], lambda: len(got) == 6)
        self.drive([first, second], 0.3)
        self.assertEqual({tag for tag, _ in got}, {"c1"}, got)
        self.assertEqual([b for _, b in got], [b"m%d" % i for i in range(6)])
        first.close()
        self.assertEqual(self.publish_all(name, [b"n1", b"n2"]), [True, True])
        self.drive_until([second], lambda: len(got) == 8)
        self.assertEqual(got[6:], [("c2", b"n1"), ("c2", b"n2")])

    def test_without_single_active_consumer_both_receive(self):
        name, error = self.declare({"x-single-active-consumer": False})
        self.assertIsNone(error, error)
        got = []
        first = self.consume_into(name, got, "c1")
        second = self.consume_into(name, got, "c2")
        self.assertEqual(self.publish_all(name, [b"m%d" % i for i in range(6)]), [True] * 6)
        self.drive_until([first, second], lambda: len(got) == 6)
        self.assertEqual({tag for tag, _ in got}, {"c1", "c2"}, got)

    def test_single_active_consumer_must_be_a_boolean(self):
        _, error = self.declare({"x-single-active-consumer": "yes"})
        self.assertRefused(error, "x-single-active-consumer")
        self.assertIn("{unacceptable_type,longstr}", error.reply_text)

    def assertNoQueue(self, name):
        """passive declare: 404, the refused declaration made no queue."""
        conn = self.connect()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            conn.channel().queue_declare(name, passive=True)
        self.assertEqual(cm.exception.reply_code, 404)


if __name__ == "__main__":
    import unittest
    unittest.main()

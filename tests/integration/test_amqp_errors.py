"""AMQP framing and protocol errors over raw sockets (amqp_target.RawAmqp), byte-exact where
the spec is: a wrong protocol header is answered with the broker's own header and a close
(spec 4.2.2); errors after the handshake are Connection.Close with the reply code of
docs/amqp.md (501 FRAME_ERROR, 504 CHANNEL_ERROR, 505 UNEXPECTED_FRAME), and after the
client's Close-Ok the broker closes the socket. Every case then checks that the broker still
serves a new pika connection. Same behaviour on RabbitMQ (CONVEYOR_AMQP_TARGET=rabbitmq)."""

import struct
import unittest

from amqp_target import (FRAME_BODY, FRAME_HEADER, PROTOCOL_HEADER, AmqpTestCase, RawAmqp,
                         conveyor_only, frame, method_frame, shortstr)


class AmqpErrorsTest(AmqpTestCase):

    def raw(self, timeout=5.0):
        conn = RawAmqp(self.host, self.port, timeout)
        self.addCleanup(conn.close)
        return conn

    def assertBrokerServes(self):
        conn = self.connect()
        ch = conn.channel()
        name = self.qname()
        ch.queue_declare(name)
        ch.confirm_delivery()
        ch.basic_publish("", name, b"alive")
        self.assertEqual(ch.basic_get(name, auto_ack=True)[2], b"alive")
        conn.close()

    def assertConnectionClose(self, conn, code, text_prefix=None):
        reply_code, text, _, _ = conn.read_connection_close()
        self.assertEqual(reply_code, code, text)
        if text_prefix is not None:
            self.assertTrue(text.startswith(text_prefix), text)
        conn.send(method_frame(0, 10, 51))  # close-ok
        conn.read_until_closed(5)
        return text

    def test_wrong_protocol_headers_get_the_broker_header_and_a_close(self):
        for header in (b"AMQP\x00\x00\x0a\x00",  # 0-10
                       b"AMQP\x00\x01\x00\x00",  # 1.0
                       b"AMQP\x03\x01\x00\x00",  # 1.0 SASL
                       b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"):
            conn = self.raw()
            conn.send(header)
            self.assertEqual(conn.read_until_closed(5), PROTOCOL_HEADER, header)
        self.assertBrokerServes()

    @conveyor_only("RabbitMQ accepts the 0-9, 0-8 and pre-standard 0-9-1 headers (it "
                   "answers Connection.Start) and waits for 8 bytes before deciding")
    def test_older_amqp_versions_and_short_garbage_are_refused_at_once(self):
        for header in (b"AMQP\x01\x01\x00\x09",  # 0-9
                       b"AMQP\x01\x01\x08\x00",  # 0-8
                       b"AMQP\x01\x01\x09\x01",  # pre-standard 0-9-1
                       b"GET "):                  # a wrong byte decides at once
            conn = self.raw()
            conn.send(header)
            self.assertEqual(conn.read_until_closed(5), PROTOCOL_HEADER, header)
        self.assertBrokerServes()

    def test_bad_frame_end_is_501(self):
        conn = self.raw()
        conn.handshake()
        # channel.open on channel 1 with 0x00 where 0xCE belongs
        conn.send(frame(1, 1, struct.pack("!HH", 20, 10) + shortstr(""), end=b"\x00"))
        self.assertConnectionClose(conn, 501, "FRAME_ERROR")
        self.assertBrokerServes()

    def test_unknown_frame_type_is_501(self):
        conn = self.raw()
        conn.handshake()
        conn.channel_open(1)
        conn.send(frame(9, 1, b"xyz"))
        self.assertConnectionClose(conn, 501, "FRAME_ERROR")
        self.assertBrokerServes()

    def test_method_on_a_channel_never_opened_is_504(self):
        conn = self.raw()
        conn.handshake()
        conn.channel_open(1)
        # queue.declare on channel 5: ticket, queue, flags, arguments
        conn.send(method_frame(5, 50, 10, struct.pack("!H", 0) + shortstr("q") + b"\x00" +
                               struct.pack("!I", 0)))
        self.assertConnectionClose(conn, 504, "CHANNEL_ERROR")
        self.assertBrokerServes()

    def test_body_frame_without_a_header_is_505(self):
        conn = self.raw()
        conn.handshake()
        conn.channel_open(1)
        conn.send(frame(FRAME_BODY, 1, b"orphan body"))
        self.assertConnectionClose(conn, 505, "UNEXPECTED_FRAME")
        self.assertBrokerServes()

    def test_method_where_a_header_is_due_is_505(self):
        conn = self.raw()
        conn.handshake()
        conn.channel_open(1)
        # basic.publish (ticket, exchange "", routing key, flags) and then no header but
        # another method
        publish = struct.pack("!H", 0) + shortstr("") + shortstr("q") + b"\x00"
        conn.send(method_frame(1, 60, 40, publish) + method_frame(1, 60, 40, publish))
        self.assertConnectionClose(conn, 505, "UNEXPECTED_FRAME")
        self.assertBrokerServes()

    def test_header_without_a_method_is_505(self):
        conn = self.raw()
        conn.handshake()
        conn.channel_open(1)
        # class 60, weight 0, body size 5, no properties
        conn.send(frame(FRAME_HEADER, 1, struct.pack("!HHQH", 60, 0, 5, 0)))
        self.assertConnectionClose(conn, 505, "UNEXPECTED_FRAME")
        self.assertBrokerServes()

    def test_client_closing_mid_handshake_and_mid_frame_is_harmless(self):
        conn = self.raw()
        conn.send(PROTOCOL_HEADER[:4])
        conn.close()
        conn = self.raw()
        conn.handshake()
        conn.send(method_frame(1, 20, 10, shortstr(""))[:6])
        conn.close()
        self.assertBrokerServes()


if __name__ == "__main__":
    unittest.main()

// Content: header frames with all 14 basic properties (pika's bytes), raw properties passed
// through unchanged, body frames split at frame_max, and the SASL responses of Start-Ok.
#include "conveyor/protocol/amqp_content.hpp"
#include "conveyor/protocol/amqp_sasl.hpp"

#include "protocol_amqp_fixture.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace std::string_literals;
using namespace conveyor::protocol::amqp;
using namespace conveyor::protocol::amqp::test;

namespace {

// python3-pika 1.2.0: pika.frame.Header(1, 5, BasicProperties(content_type='application/json',
// content_encoding='utf-8', headers={'retries': 3, 'trace': {'id': 'abc', 'hops': [1, 2]},
// 'big': 2**40, 'none': None}, delivery_mode=2, priority=7, correlation_id='corr-1',
// reply_to='amq.rabbitmq.reply-to', expiration='60000', message_id='msg-1',
// timestamp=1700000000, type='task', user_id='guest', app_id='celery', cluster_id='c1'))
// .marshal().hex()
const std::string pika_full_header = from_hex(
    "020001000000bb003c00000000000000000005fffc106170706c69636174696f6e2f6a736f6e057574662d38"
    "0000004a07726574726965734900000003057472616365460000001f026964530000000361626304686f7073"
    "410000000a49000000014900000002036269676c0000010000000000046e6f6e6556020706636f72722d3115"
    "616d712e7261626269746d712e7265706c792d746f053630303030056d73672d31000000006553f100047461"
    "736b0567756573740663656c657279026331ce");

TEST(amqp_content, pika_header_with_every_property_decodes) {
    const std::string payload = pika_full_header.substr(7, pika_full_header.size() - 8);
    const auto header = decode_content_header(payload);
    ASSERT_TRUE(header) << header.error().text;
    EXPECT_EQ(header->class_id, 60);
    EXPECT_EQ(header->body_size, 5u);
    EXPECT_EQ(header->property_flags(), 0xfffc);
    const basic_properties& p = header->properties;
    EXPECT_EQ(p.content_type, "application/json");
    EXPECT_EQ(p.content_encoding, "utf-8");
    ASSERT_TRUE(p.headers);
    EXPECT_EQ(std::get<std::int32_t>(p.headers->find("retries")->value), 3);
    EXPECT_EQ(p.delivery_mode, 2);
    EXPECT_EQ(p.priority, 7);
    EXPECT_EQ(p.correlation_id, "corr-1");
    EXPECT_EQ(p.reply_to, "amq.rabbitmq.reply-to");
    EXPECT_EQ(p.expiration, "60000");
    EXPECT_EQ(p.message_id, "msg-1");
    EXPECT_EQ(p.timestamp, 1700000000u);
    EXPECT_EQ(p.type, "task");
    EXPECT_EQ(p.user_id, "guest");
    EXPECT_EQ(p.app_id, "celery");
    EXPECT_EQ(p.cluster_id, "c1");
    // The raw bytes are the payload after class, weight and body size, unchanged ...
    EXPECT_EQ(header->raw_properties, payload.substr(12));
    // ... re-encoding the decoded properties gives them back ...
    EXPECT_EQ(to_hex(encode_basic_properties(p)), to_hex(header->raw_properties));
    // ... and a header written from them for another body size differs only in that size.
    std::string again;
    encode_content_header(again, 1, 5, header->raw_properties);
    EXPECT_EQ(to_hex(again), to_hex(pika_full_header));
}

TEST(amqp_content, celery_task_properties_as_py_amqp_writes_them) {
    // py-amqp 5.1.1 (Debian python3-amqp): amqp.basic_message.Message(body, content_type=
    // 'application/json', content_encoding='utf-8', application_headers={'lang': 'py', 'task':
    // 'tasks.add', 'id': 'f0b1', 'shadow': None, 'eta': None, 'retries': 0, 'timelimit':
    // [None, None], 'argsrepr': '(2, 2)', 'kwargsrepr': '{}', 'origin': 'gen1@host',
    // 'big': 2**40}, delivery_mode=2, priority=0, correlation_id='f0b1',
    // reply_to='d3a9-reply')._serialize_properties().hex(): a Celery task message's shape.
    const std::string raw = from_hex(
        "fe00106170706c69636174696f6e2f6a736f6e057574662d380000009e046c616e6753000000027079047461"
        "736b53000000097461736b732e61646402696453000000046630623106736861646f77560365746156077265"
        "747269657349000000000974696d656c696d697441000000025656086172677372657072530000000628322c"
        "2032290a6b77617267737265707253000000027b7d066f726967696e530000000967656e3140686f73740362"
        "69674c0000010000000000020004663062310a643361392d7265706c79");
    const auto p = decode_basic_properties(raw);
    ASSERT_TRUE(p) << p.error().text;
    EXPECT_EQ(p->content_type, "application/json");
    EXPECT_EQ(p->priority, 0);
    EXPECT_EQ(p->reply_to, "d3a9-reply");
    ASSERT_TRUE(p->headers);
    EXPECT_EQ(std::get<std::string>(p->headers->find("task")->value), "tasks.add");
    EXPECT_EQ(p->headers->find("shadow")->tag, 'V');
    EXPECT_EQ(p->headers->find("timelimit")->tag, 'A');
    EXPECT_EQ(p->headers->find("big")->tag, 'L');  // py-amqp's tag for large ints
    EXPECT_EQ(to_hex(encode_basic_properties(*p)), to_hex(raw));
}

TEST(amqp_content, properties_round_trip_one_at_a_time) {
    basic_properties all;
    all.content_type = "t";
    all.content_encoding = "e";
    all.headers = make_table({{"h", 1}});
    all.delivery_mode = 1;
    all.priority = 9;
    all.correlation_id = "c";
    all.reply_to = "r";
    all.expiration = "1000";
    all.message_id = "m";
    all.timestamp = 42;
    all.type = "ty";
    all.user_id = "u";
    all.app_id = "a";
    all.cluster_id = "cl";
    EXPECT_EQ(*decode_basic_properties(encode_basic_properties(all)), all);
    EXPECT_EQ(encode_basic_properties(all).substr(0, 2), "\xff\xfc"s);
    // Each property alone sets its own flag bit, 15 down to 2.
    const basic_properties none;
    EXPECT_EQ(encode_basic_properties(none), "\x00\x00"s);
    basic_properties only;
    only.cluster_id = "x";
    EXPECT_EQ(encode_basic_properties(only), "\x00\x04\x01x"s);
    only = {};
    only.content_type = "x";
    EXPECT_EQ(encode_basic_properties(only), "\x80\x00\x01x"s);
}

TEST(amqp_content, malformed_headers_are_refused) {
    // Too short for class, weight and body size.
    EXPECT_EQ(decode_content_header("\x00\x3c\x00"s).error().code, reply_code::frame_error);
    const std::string prefix = "\x00\x3c\x00\x00"s + std::string(8, '\0');
    // No flags.
    EXPECT_EQ(decode_content_header(prefix).error().code, reply_code::frame_error);
    // A flagged property missing.
    EXPECT_EQ(decode_content_header(prefix + "\x80\x00"s).error().text,
              "content header properties run past the end of the frame");
    // Bytes after the last property.
    EXPECT_EQ(decode_content_header(prefix + "\x00\x00z"s).error().text,
              "content header has 1 bytes after its last property");
    // A headers table with an unknown type.
    const auto bad = decode_content_header(prefix + "\x20\x00\x00\x00\x00\x03\x01k?"s);
    EXPECT_EQ(bad.error().code, reply_code::syntax_error);
    EXPECT_EQ(bad.error().text, "content header headers: unknown field table value type 0x3f");
}

TEST(amqp_content, delivery_is_split_at_frame_max_and_reassembles) {
    const std::uint32_t frame_max = 4096;
    std::string body;
    for (int i = 0; i < 10000; ++i) {
        body.push_back(static_cast<char>('a' + i % 26));
    }
    basic_properties p;
    p.headers = make_table({{"x-retries", 2}});
    std::string out;
    const basic_deliver deliver{"ctag", 77, true, "amq.direct", "rk"};
    encode_content_command(out, 3, deliver, encode_basic_properties(p), body, frame_max);
    // Method, header, then bodies of 4088, 4088 and 1824 bytes.
    frame_decoder frames(frame_max);
    std::vector<std::size_t> body_sizes;
    std::size_t at = 0;
    frame f;
    int count = 0;
    while (at < out.size()) {
        const auto r = frames.feed(std::string_view(out).substr(at), f);
        ASSERT_EQ(r.status, frame_status::frame);
        EXPECT_LE(r.consumed, frame_max);
        if (f.type == frame_type::body) {
            body_sizes.push_back(f.payload.size());
        }
        ++count;
        at += r.consumed;
    }
    EXPECT_EQ(count, 5);
    EXPECT_EQ(body_sizes, (std::vector<std::size_t>{4088, 4088, 1824}));
    connection_limits limits;
    limits.frame_max = frame_max;
    const outcome o = decode_whole(out, limits, peer::client);
    ASSERT_EQ(o.events.size(), 1u) << o;
    EXPECT_EQ(o.events[0].body, body);
    EXPECT_EQ(o.events[0].channel, 3);
}

TEST(amqp_content, a_split_delivery_decodes_at_every_split_point) {
    std::string out;
    encode_content_command(out, 1, basic_get_ok{1, false, "", "q", 0}, "\x00\x00"s,
                           std::string(9000, 'z'), 4096);
    connection_limits limits;
    limits.frame_max = 4096;
    const outcome o = decode_at_every_split(out, limits, peer::client);
    ASSERT_EQ(o.events.size(), 1u);
    EXPECT_EQ(o.events[0].body.size(), 9000u);
}

TEST(amqp_sasl, plain_response_as_pika_sends_it) {
    const auto c = parse_sasl_response("PLAIN", "\0guest\0guest"s);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->user, "guest");
    EXPECT_EQ(c->password, "guest");
    EXPECT_EQ(c->authzid, "");
    EXPECT_EQ(parse_plain_response("admin\0bob\0pa\0ss"s)->password, "pa\0ss"s);
    EXPECT_EQ(parse_plain_response("admin\0bob\0pa\0ss"s)->authzid, "admin");
    EXPECT_EQ(encode_plain_response("u", "p"), "\0u\0p"s);
    const auto bad = parse_plain_response("guest");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code, reply_code::access_refused);
}

TEST(amqp_sasl, amqplain_response_as_py_amqp_sends_it) {
    // py-amqp 5.1 (amqp.sasl.AMQPLAIN.start): the table {LOGIN: 'guest', PASSWORD: 'guest'}
    // written by _write_table, without its 4-byte length.
    const std::string response =
        "\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest"s;
    const auto c = parse_sasl_response("AMQPLAIN", response);
    ASSERT_TRUE(c) << c.error().text;
    EXPECT_EQ(c->user, "guest");
    EXPECT_EQ(c->password, "guest");
    EXPECT_EQ(encode_amqplain_response("guest", "guest"), response);
    EXPECT_EQ(parse_amqplain_response("\x05LOGINS\x00\x00\x00\x01x"s).error().text,
              "AMQPLAIN response lacks LOGIN or PASSWORD");
    EXPECT_EQ(parse_amqplain_response("\x05LOG"s).error().code, reply_code::access_refused);
}

TEST(amqp_sasl, unknown_mechanism_is_refused) {
    const auto r = parse_sasl_response("EXTERNAL", "");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::command_invalid);
    EXPECT_EQ(r.error().text,
              "unknown authentication mechanism 'EXTERNAL' (offered: PLAIN AMQPLAIN)");
}

}  // namespace

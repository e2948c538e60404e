// Command assembly over a byte stream (connection_decoder): a pika session at every split
// point, content header and body rules, and each sequencing error with its reply code.
#include "conveyor/protocol/amqp_command.hpp"

#include "protocol_amqp_fixture.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace std::string_literals;
using namespace conveyor::protocol::amqp;
using namespace conveyor::protocol::amqp::test;

namespace {

// Produced with python3-pika 1.2.0 (pika.frame.Method/Header/Body/Heartbeat .marshal()):
// start-ok (PLAIN guest/guest), tune-ok (2047, 4096, 60), connection.open "/", channel.open 1,
// confirm.select, basic.publish "" "emails" mandatory, a header (delivery_mode 2, body 6),
// body frames "hel" and "lo!", a heartbeat, basic.ack 1.
const std::string pika_session = from_hex(
    "01000000000054000a000b000000300770726f64756374530000000470696b610c6361706162696c697469"
    "6573460000000d0a62617369632e6e61636b740105504c41494e0000000c00677565737400677565737405"
    "656e5f5553ce0100000000000c000a001f07ff00001000003cce01000000000008000a0028012f0000ce01"
    "0001000000050014000a00ce010001000000050055000a00ce0100010000000f003c002800000006656d61"
    "696c7301ce0200010000000f003c00000000000000000006100002ce0300010000000368656cce03000100"
    "0000036c6f21ce08000000000000ce0100010000000d003c0050000000000000000100ce");

std::string method_frame(std::uint16_t channel, const method& m) {
    std::string out;
    std::visit([&](const auto& v) { encode_method_frame(out, channel, v); }, m);
    return out;
}

std::string header_frame(std::uint16_t channel, std::uint64_t body_size,
                         const basic_properties& p = {}) {
    std::string out;
    encode_content_header(out, channel, body_size, encode_basic_properties(p));
    return out;
}

std::string body_frame(std::uint16_t channel, std::string_view body) {
    std::string out;
    encode_frame(out, frame_type::body, channel, body);
    return out;
}

std::string publish(std::uint16_t channel, std::string_view body, const basic_properties& p = {}) {
    return method_frame(channel, basic_publish{0, "", "q", false, false}) +
           header_frame(channel, body.size(), p) + (body.empty() ? "" : body_frame(channel, body));
}

TEST(amqp_command, pika_session_decodes_at_every_split_point) {
    const outcome out = decode_at_every_split(pika_session);
    ASSERT_EQ(out.error.text, "");
    ASSERT_EQ(out.events.size(), 8u) << out;
    EXPECT_EQ(out.events[0].method.substr(0, 8), "000a000b");  // start-ok
    EXPECT_EQ(out.events[4].method.substr(0, 8), "0055000a");  // confirm.select
    const event& published = out.events[5];
    EXPECT_EQ(published.status, decode_step_status::command);
    EXPECT_EQ(published.channel, 1);
    EXPECT_EQ(published.method.substr(0, 8), "003c0028");
    EXPECT_EQ(published.header, "6:100002");  // flags 0x1000: delivery_mode 2
    EXPECT_EQ(published.body, "hello!");
    EXPECT_EQ(out.events[6].status, decode_step_status::heartbeat);
    EXPECT_EQ(out.events[7].method, "003c0050000000000000000100");
    EXPECT_EQ(out.pending, 0u);
}

TEST(amqp_command, commands_carry_typed_methods_and_properties) {
    connection_decoder decoder;
    command cmd;
    std::string buffer = pika_session;
    for (int i = 0; i < 6; ++i) {
        const auto step = decoder.feed(buffer, cmd);
        buffer.erase(0, step.consumed);
    }
    const auto& p = std::get<basic_publish>(cmd.method);
    EXPECT_EQ(p.routing_key, "emails");
    EXPECT_TRUE(p.mandatory);
    ASSERT_TRUE(cmd.header);
    EXPECT_EQ(cmd.header->properties.delivery_mode, 2);
    EXPECT_EQ(cmd.body, "hello!");
}

TEST(amqp_command, interleaved_channels_assemble_separately) {
    const std::string input = method_frame(1, basic_publish{0, "", "a", false, false}) +
                              method_frame(2, basic_publish{0, "", "b", false, false}) +
                              header_frame(2, 2) + header_frame(1, 3) + body_frame(1, "x") +
                              body_frame(2, "BB") + method_frame(2, basic_ack{1, false}) +
                              body_frame(1, "yz");
    const outcome out = decode_at_every_split(input);
    ASSERT_EQ(out.error.text, "");
    ASSERT_EQ(out.events.size(), 3u);
    EXPECT_EQ(out.events[0].channel, 2);
    EXPECT_EQ(out.events[0].body, "BB");
    EXPECT_EQ(out.events[1].method.substr(0, 8), "003c0050");
    EXPECT_EQ(out.events[2].channel, 1);
    EXPECT_EQ(out.events[2].body, "xyz");
}

TEST(amqp_command, empty_body_completes_at_the_header) {
    const outcome out = decode_at_every_split(publish(1, ""));
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].status, decode_step_status::command);
    EXPECT_EQ(out.events[0].header, "0:0000");
}

void expect_error(const std::string& input, reply_code code, const std::string& text,
                  std::size_t commands_before = 0) {
    const outcome out = decode_at_every_split(input);
    ASSERT_EQ(out.events.size(), commands_before + 1) << out;
    EXPECT_EQ(out.events.back().status, decode_step_status::error);
    EXPECT_EQ(out.error.code, code) << out.error.text;
    EXPECT_EQ(out.error.text, text);
    EXPECT_TRUE(out.error.connection_error);
}

TEST(amqp_command, content_header_without_a_method_is_unexpected) {
    expect_error(header_frame(1, 3), reply_code::unexpected_frame,
                 "content header frame on channel 1 with no content-bearing method before it");
    expect_error(method_frame(1, basic_ack{1, false}) + header_frame(1, 3),
                 reply_code::unexpected_frame,
                 "content header frame on channel 1 with no content-bearing method before it", 1);
}

TEST(amqp_command, body_frame_without_a_header_is_unexpected) {
    expect_error(body_frame(1, "x"), reply_code::unexpected_frame,
                 "body frame on channel 1 with no content-bearing method before it");
    expect_error(method_frame(1, basic_publish{}) + body_frame(1, "x"),
                 reply_code::unexpected_frame,
                 "body frame on channel 1 with no content header yet for basic.publish");
}

TEST(amqp_command, method_in_the_middle_of_content_is_unexpected) {
    expect_error(method_frame(1, basic_publish{}) + method_frame(1, basic_ack{}),
                 reply_code::unexpected_frame,
                 "expected a content header for basic.publish on channel 1, got a method frame");
    expect_error(method_frame(1, basic_publish{}) + header_frame(1, 5) + body_frame(1, "ab") +
                     method_frame(1, basic_ack{}),
                 reply_code::unexpected_frame,
                 "expected a body frame for basic.publish on channel 1, got a method frame");
}

TEST(amqp_command, second_header_is_unexpected) {
    expect_error(method_frame(1, basic_publish{}) + header_frame(1, 5) + header_frame(1, 5),
                 reply_code::unexpected_frame,
                 "content header frame on channel 1 with a second header for basic.publish");
}

TEST(amqp_command, body_longer_than_declared_is_a_frame_error) {
    expect_error(
        method_frame(1, basic_publish{}) + header_frame(1, 3) + body_frame(1, "ab") +
            body_frame(1, "cd"),
        reply_code::frame_error,
        "body frames on channel 1 carry more than the 3 bytes the content header declared");
}

TEST(amqp_command, header_of_another_class_is_unexpected) {
    std::string header;
    encode_content_header(header, 1, 1, "\x00\x00"s, 50);
    expect_error(method_frame(1, basic_publish{}) + header, reply_code::unexpected_frame,
                 "content header of class 50 for basic.publish on channel 1");
}

TEST(amqp_command, continuation_flag_is_a_syntax_error) {
    std::string header;
    encode_content_header(header, 1, 1, "\x00\x01"s);
    expect_error(method_frame(1, basic_publish{}) + header, reply_code::syntax_error,
                 "content header property flags have the continuation bit set (basic has one "
                 "flag word)");
}

TEST(amqp_command, channel_rules) {
    expect_error(method_frame(0, basic_qos{}), reply_code::channel_error,
                 "basic.qos on channel 0 (channel 0 is for the connection)");
    expect_error(method_frame(1, connection_close_ok{}), reply_code::command_invalid,
                 "connection.close-ok on channel 1 (connection methods belong on channel 0)");
    expect_error(body_frame(0, "x"), reply_code::frame_error, "body frame on channel 0");
    expect_error(header_frame(0, 1), reply_code::frame_error, "content header frame on channel 0");
    expect_error(method_frame(2048, channel_open{}), reply_code::channel_error,
                 "channel 2048 is above channel_max 2047");
}

TEST(amqp_command, methods_of_the_other_side_are_refused) {
    expect_error(method_frame(1, basic_deliver{}), reply_code::command_invalid,
                 "basic.deliver is sent by the server, not the client");
    // A client-side decoder takes deliveries with their content, and refuses publishes.
    std::string delivery;
    encode_content_command(delivery, 1, basic_deliver{"ctag", 1, false, "", "q"}, "\x00\x00"s,
                           "body", 4096);
    const outcome out = decode_whole(delivery, {}, peer::client);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].body, "body");
    EXPECT_EQ(decode_whole(publish(1, "x"), {}, peer::client).error.code,
              reply_code::command_invalid);
}

TEST(amqp_command, unknown_method_reports_not_implemented) {
    std::string frame;
    encode_frame(frame, frame_type::method, 1, "\x00\x3c\x00\x07"s);
    expect_error(frame, reply_code::not_implemented, "unknown method 7 of class basic (60)");
}

TEST(amqp_command, malformed_method_arguments_close_the_connection) {
    // queue.declare whose queue name says 5 bytes where the frame has 1.
    std::string truncated;
    encode_frame(truncated, frame_type::method, 1, "\x00\x32\x00\x0a\x00\x00\x05q"s);
    expect_error(truncated, reply_code::frame_error,
                 "queue.declare: arguments run past the end of the frame");
    // basic.consume whose arguments table nests 33 deep.
    field_table deep;
    for (int i = 0; i < max_table_depth; ++i) {
        deep = make_table({{"n", std::move(deep)}});
    }
    basic_consume consume;
    consume.queue = "q";
    consume.arguments = deep;
    expect_error(method_frame(1, consume), reply_code::syntax_error,
                 "basic.consume: field tables and arrays nested deeper than 32");
}

TEST(amqp_command, body_too_large_is_reported_and_its_body_dropped) {
    connection_limits limits;
    limits.commands.max_body_size = 4;
    const std::string input =
        publish(1, "12345") + publish(1, "1234") + method_frame(1, basic_ack{});
    const outcome whole = decode_at_every_split(input, limits);
    ASSERT_EQ(whole.events.size(), 3u) << whole;
    EXPECT_EQ(whole.events[0].status, decode_step_status::body_too_large);
    EXPECT_EQ(whole.events[0].header, "5:0000");
    EXPECT_EQ(whole.events[0].body, "");
    EXPECT_EQ(whole.events[1].status, decode_step_status::command);
    EXPECT_EQ(whole.events[1].body, "1234");
    EXPECT_EQ(whole.events[2].status, decode_step_status::command);
}

TEST(amqp_command, a_closing_channel_drops_content_until_close_ok) {
    command cmd;
    connection_decoder decoder;
    std::string buffer = method_frame(1, basic_publish{}) + header_frame(1, 3);
    auto step = decoder.feed(buffer, cmd);
    EXPECT_EQ(step.status, decode_step_status::need_more);
    buffer.erase(0, step.consumed);
    // The broker refuses the publish (say the exchange is missing) and sends Channel.Close.
    decoder.commands().close_channel(1);
    EXPECT_FALSE(decoder.commands().in_content(1));
    buffer += body_frame(1, "abc") + publish(1, "more") + method_frame(1, basic_ack{}) +
              method_frame(1, channel_close_ok{}) + publish(1, "again");
    std::vector<decode_step_status> seen;
    std::vector<method_key> keys;
    while (true) {
        step = decoder.feed(buffer, cmd);
        buffer.erase(0, step.consumed);
        if (step.status == decode_step_status::need_more) {
            break;
        }
        seen.push_back(step.status);
        keys.push_back(key_of(cmd.method));
    }
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(keys[0], basic_ack::id);  // returned, for the broker to discard
    EXPECT_EQ(keys[1], channel_close_ok::id);
    EXPECT_EQ(keys[2], basic_publish::id);
    EXPECT_EQ(cmd.body, "again");
}

}  // namespace

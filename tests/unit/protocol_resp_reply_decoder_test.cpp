// The reply decoder fed as a client feeds it, whole, at every split point and byte by byte.
// Replies are compared through a compact rendering: `+OK`, `$bytes`, `*[a, b]`, `%{k: v}`...
#include "conveyor/protocol/resp_reply_decoder.hpp"
#include "conveyor/protocol/resp_writer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using conveyor::protocol::reply_status;
using conveyor::protocol::resp_reply_decoder;
using conveyor::protocol::resp_reply_limits;
using conveyor::protocol::resp_type;
using conveyor::protocol::resp_value;
using conveyor::protocol::resp_version;
using conveyor::protocol::resp_writer;

namespace {

std::string describe(const resp_value& v);

std::string describe_list(const std::vector<resp_value>& elements, bool pairs) {
    std::string out;
    for (std::size_t i = 0; i < elements.size(); ++i) {
        out += (i == 0 ? "" : (pairs && i % 2 == 1) ? ": " : ", ") + describe(elements[i]);
    }
    return out;
}

std::string describe(const resp_value& v) {
    std::string out;
    if (!v.attributes.empty()) {
        out = "|{" + describe_list(v.attributes, true) + "} ";
    }
    switch (v.type) {
        case resp_type::simple_string:
            return out + "+" + v.text;
        case resp_type::error:
            return out + "-" + v.text;
        case resp_type::integer:
            return out + ":" + std::to_string(v.integer);
        case resp_type::bulk_string:
            return out + "$" + v.text;
        case resp_type::null:
            return out + "_";
        case resp_type::array:
            return out + "*[" + describe_list(v.elements, false) + "]";
        case resp_type::map:
            return out + "%{" + describe_list(v.elements, true) + "}";
        case resp_type::set:
            return out + "~[" + describe_list(v.elements, false) + "]";
        case resp_type::push:
            return out + ">[" + describe_list(v.elements, false) + "]";
        case resp_type::boolean:
            return out + (v.integer ? "#t" : "#f");
        case resp_type::double_number:
            return out + "," + v.text;
        case resp_type::big_number:
            return out + "(" + v.text;
        case resp_type::bulk_error:
            return out + "!" + v.text;
        case resp_type::verbatim:
            return out + "=" + v.format + ":" + v.text;
    }
    return out + "?";
}

struct outcome {
    std::vector<std::string> replies;
    std::string error;
    bool in_reply = false;
    bool operator==(const outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const outcome& o) {
    for (const auto& r : o.replies) {
        os << '<' << r << "> ";
    }
    return os << "error: \"" << o.error << "\" in_reply: " << o.in_reply;
}

outcome decode_chunks(const std::vector<std::string_view>& chunks, resp_reply_limits limits) {
    resp_reply_decoder decoder(limits);
    std::string buffer;
    resp_value reply;
    outcome out;
    for (const std::string_view chunk : chunks) {
        buffer.append(chunk);
        while (true) {
            const auto result = decoder.feed(buffer, reply);
            EXPECT_LE(result.consumed, buffer.size());
            buffer.erase(0, result.consumed);
            if (result.status == reply_status::error) {
                out.error = decoder.error_message();
                return out;
            }
            if (result.status == reply_status::need_more) {
                break;
            }
            out.replies.push_back(describe(reply));
        }
    }
    out.in_reply = decoder.in_reply();
    return out;
}

outcome decode_split_invariant(std::string_view input, resp_reply_limits limits = {}) {
    outcome whole = decode_chunks({input}, limits);
    for (std::size_t i = 0; i <= input.size(); ++i) {
        EXPECT_EQ(decode_chunks({input.substr(0, i), input.substr(i)}, limits), whole)
            << "split at " << i;
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i) {
        bytes.push_back(input.substr(i, 1));
    }
    EXPECT_EQ(decode_chunks(bytes, limits), whole) << "byte by byte";
    return whole;
}

void expect_replies(std::string_view input, const std::vector<std::string>& expected,
                    resp_reply_limits limits = {}) {
    const outcome whole = decode_split_invariant(input, limits);
    EXPECT_EQ(whole.replies, expected) << "input: " << input;
    EXPECT_EQ(whole.error, "") << "input: " << input;
    EXPECT_FALSE(whole.in_reply) << "input: " << input;
}

void expect_error(std::string_view input, const std::string& message,
                  resp_reply_limits limits = {}) {
    const outcome whole = decode_split_invariant(input, limits);
    EXPECT_EQ(whole.error, message) << "input: " << input;
}

TEST(resp_reply_decoder, resp2_types_decode_at_every_split_point) {
    expect_replies("+OK\r\n", {"+OK"});
    expect_replies("-ERR unknown command\r\n", {"-ERR unknown command"});
    expect_replies(":-42\r\n", {":-42"});
    expect_replies("$5\r\nhello\r\n", {"$hello"});
    expect_replies("$0\r\n\r\n", {"$"});
    expect_replies("$-1\r\n*-1\r\n", {"_", "_"});
    expect_replies("*0\r\n", {"*[]"});
    expect_replies("*3\r\n$3\r\nfoo\r\n*1\r\n:1\r\n$-1\r\n", {"*[$foo, *[:1], _]"});
}

TEST(resp_reply_decoder, resp3_types_decode_at_every_split_point) {
    expect_replies("_\r\n#t\r\n#f\r\n", {"_", "#t", "#f"});
    expect_replies(",1.5\r\n,inf\r\n,-inf\r\n,nan\r\n", {",1.5", ",inf", ",-inf", ",nan"});
    expect_replies("(-12345678901234567890\r\n", {"(-12345678901234567890"});
    expect_replies("!21\r\nSYNTAX invalid syntax\r\n", {"!SYNTAX invalid syntax"});
    expect_replies("=15\r\ntxt:Some string\r\n", {"=txt:Some string"});
    expect_replies("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", {"%{+a: :1, +b: :2}"});
    expect_replies("~2\r\n+x\r\n+y\r\n", {"~[+x, +y]"});
    expect_replies(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", {">[$message, $ch, $hi]"});
}

TEST(resp_reply_decoder, double_value_is_parsed) {
    resp_reply_decoder decoder;
    resp_value reply;
    ASSERT_EQ(decoder.feed(",-2.5e-3\r\n", reply).status, reply_status::reply);
    EXPECT_EQ(reply.number, -2.5e-3);
    ASSERT_EQ(decoder.feed(",-inf\r\n", reply).status, reply_status::reply);
    EXPECT_TRUE(std::isinf(reply.number) && reply.number < 0);
    ASSERT_EQ(decoder.feed(",nan\r\n", reply).status, reply_status::reply);
    EXPECT_TRUE(std::isnan(reply.number));
}

TEST(resp_reply_decoder, bulk_payload_is_binary_safe) {
    expect_replies("$7\r\na\r\n\0*$\r\r\n"s, {"$a\r\n\0*$\r"s});
}

TEST(resp_reply_decoder, attributes_annotate_the_value_that_follows) {
    // The example of the RESP3 specification.
    expect_replies(
        "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
        "*2\r\n:2039123\r\n:9543892\r\n",
        {"|{+key-popularity: %{$a: ,0.1923, $b: ,0.0012}} *[:2039123, :9543892]"});
    expect_replies("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", {"*[:1, |{+ttl: :3600} :2]"});
    expect_replies("|0\r\n+OK\r\n", {"+OK"});
    expect_replies("|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n+OK\r\n", {"|{+a: :1, +b: :2} +OK"});
}

TEST(resp_reply_decoder, attribute_without_its_value_leaves_reply_open) {
    const outcome o = decode_split_invariant("|1\r\n+a\r\n:1\r\n");
    EXPECT_TRUE(o.replies.empty());
    EXPECT_TRUE(o.in_reply);
}

TEST(resp_reply_decoder, pipelined_replies_come_out_one_at_a_time) {
    const std::string input = "+OK\r\n:1\r\n*1\r\n$1\r\nx\r\n";
    expect_replies(input, {"+OK", ":1", "*[$x]"});
    resp_reply_decoder decoder;
    resp_value reply;
    const auto first = decoder.feed(input, reply);
    EXPECT_EQ(first.status, reply_status::reply);
    EXPECT_EQ(first.consumed, 5u);
}

TEST(resp_reply_decoder, writer_output_decodes_to_the_same_tree) {
    for (const auto version : {resp_version::resp2, resp_version::resp3}) {
        std::string wire;
        resp_writer writer(wire, version);
        writer.map_header(2);
        writer.bulk("name");
        writer.verbatim("conveyor");
        writer.bulk("flags");
        writer.set_header(3);
        writer.boolean(true);
        writer.dbl(0.25);
        writer.null();
        writer.array_header(2);
        writer.simple("OK");
        writer.error("ERR no");
        const bool v3 = version == resp_version::resp3;
        expect_replies(wire, {v3 ? "%{$name: =txt:conveyor, $flags: ~[#t, ,0.25, _]}"
                                 : "*[$name, $conveyor, $flags, *[:1, $0.25, _]]",
                              "*[+OK, -ERR no]"});
    }
}

TEST(resp_reply_decoder, malformed_lines_are_errors) {
    expect_error("?x\r\n", "Protocol error: unexpected reply type '?'");
    expect_error("\r\n", "Protocol error: empty reply line");
    expect_error(":12a\r\n", "Protocol error: invalid integer");
    expect_error(":\r\n", "Protocol error: invalid integer");
    expect_error("_x\r\n", "Protocol error: invalid null");
    expect_error("#x\r\n", "Protocol error: invalid boolean");
    expect_error(",1.5x\r\n", "Protocol error: invalid double");
    expect_error(",\r\n", "Protocol error: invalid double");
    expect_error("(12a\r\n", "Protocol error: invalid big number");
    expect_error("(\r\n", "Protocol error: invalid big number");
}

TEST(resp_reply_decoder, malformed_lengths_are_errors) {
    expect_error("$-2\r\n", "Protocol error: invalid bulk length");
    expect_error("!-1\r\n", "Protocol error: invalid bulk length");
    expect_error("$x\r\n", "Protocol error: invalid bulk length");
    expect_error("%-1\r\n", "Protocol error: invalid aggregate length");
    expect_error("*01\r\n", "Protocol error: invalid aggregate length");
    expect_error("=3\r\ntxt\r\n", "Protocol error: invalid verbatim string");
    expect_error("=5\r\ntxt-x\r\n", "Protocol error: invalid verbatim string");
    expect_error("$3\r\nfooX\r\n", "Protocol error: expected CRLF after bulk data");
}

TEST(resp_reply_decoder, limits_are_honoured) {
    resp_reply_limits limits;
    limits.max_depth = 2;
    limits.max_aggregate_len = 3;
    limits.max_bulk_len = 4;
    limits.max_line_len = 8;
    expect_replies("*1\r\n*1\r\n:1\r\n", {"*[*[:1]]"}, limits);
    expect_error("*1\r\n*1\r\n*1\r\n:1\r\n", "Protocol error: reply nested too deeply", limits);
    expect_error("|1\r\n*1\r\n*1\r\n:1\r\n", "Protocol error: reply nested too deeply", limits);
    expect_error("*4\r\n", "Protocol error: aggregate too long", limits);
    expect_replies("$4\r\nabcd\r\n", {"$abcd"}, limits);
    expect_error("$5\r\nabcde\r\n", "Protocol error: bulk string too long", limits);
    expect_replies("+1234567\r\n", {"+1234567"}, limits);
    expect_error("+12345678\r\n", "Protocol error: reply line too long", limits);
    expect_error("+12345678", "Protocol error: reply line too long", limits);
}

TEST(resp_reply_decoder, large_bulk_is_consumed_as_it_arrives) {
    const std::string payload(std::size_t{1024} * 1024, 'p');
    const std::string input = "$1048576\r\n" + payload + "\r\n";
    resp_reply_decoder decoder;
    resp_value reply;
    std::string buffer;
    std::size_t replies = 0;
    for (std::size_t at = 0; at < input.size(); at += 4099) {
        buffer.append(input.substr(at, 4099));
        const auto result = decoder.feed(buffer, reply);
        ASSERT_NE(result.status, reply_status::error) << decoder.error_message();
        buffer.erase(0, result.consumed);
        replies += result.status == reply_status::reply ? 1 : 0;
        ASSERT_LT(buffer.size(), 32u);
    }
    ASSERT_EQ(replies, 1u);
    EXPECT_TRUE(reply.text == payload);
}

TEST(resp_reply_decoder, error_is_sticky_until_reset) {
    resp_reply_decoder decoder;
    resp_value reply;
    EXPECT_EQ(decoder.feed("?\r\n", reply).status, reply_status::error);
    EXPECT_EQ(decoder.feed("+OK\r\n", reply).status, reply_status::error);
    decoder.reset();
    EXPECT_EQ(decoder.feed("+OK\r\n", reply).status, reply_status::reply);
    EXPECT_EQ(reply.text, "OK");
}

TEST(resp_reply_decoder, in_reply_tracks_partial_replies) {
    resp_reply_decoder decoder;
    resp_value reply;
    EXPECT_FALSE(decoder.in_reply());
    EXPECT_EQ(decoder.feed("*2\r\n:1\r\n", reply).status, reply_status::need_more);
    EXPECT_TRUE(decoder.in_reply());
    EXPECT_EQ(decoder.feed(":2\r\n", reply).status, reply_status::reply);
    EXPECT_FALSE(decoder.in_reply());
    EXPECT_EQ(decoder.feed("+O", reply).consumed, 0u);
    EXPECT_TRUE(decoder.in_reply());
    decoder.reset();
    EXPECT_FALSE(decoder.in_reply());
}

}  // namespace

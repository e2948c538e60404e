// The request decoder is fed as a session feeds it: bytes appended to a buffer, feed() called
// until it asks for more, consumed bytes dropped. Every input is decoded whole, split at every
// point, at every pair of points (short inputs) and byte by byte; all must agree.
#include "conveyor/protocol/resp_decoder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

using namespace std::string_literals;
using conveyor::protocol::decode_status;
using conveyor::protocol::resp_limits;
using conveyor::protocol::resp_request_decoder;

namespace {

using request = std::vector<std::string>;

struct outcome {
    std::vector<request> requests;
    std::string error;        // error_message() when decoding failed, else empty
    std::size_t pending = 0;  // bytes the decoder left in the buffer at the end
    bool in_request = false;

    bool operator==(const outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const outcome& o) {
    os << "{requests:";
    for (const auto& r : o.requests) {
        os << " [";
        for (const auto& a : r) {
            os << '"' << a << "\" ";
        }
        os << ']';
    }
    return os << ", error: \"" << o.error << "\", pending: " << o.pending
              << ", in_request: " << o.in_request << '}';
}

outcome decode_chunks(const std::vector<std::string_view>& chunks, resp_limits limits) {
    resp_request_decoder decoder(limits);
    std::string buffer;
    std::vector<std::string> args;
    outcome out;
    for (const std::string_view chunk : chunks) {
        buffer.append(chunk);
        while (true) {
            const auto result = decoder.feed(buffer, args);
            EXPECT_LE(result.consumed, buffer.size());
            buffer.erase(0, result.consumed);
            if (result.status == decode_status::error) {
                out.error = decoder.error_message();
                return out;
            }
            if (result.status == decode_status::need_more) {
                break;
            }
            out.requests.push_back(args);
        }
    }
    out.pending = buffer.size();
    out.in_request = decoder.in_request();
    return out;
}

outcome decode_whole(std::string_view input, resp_limits limits = {}) {
    return decode_chunks({input}, limits);
}

// Decodes `input` whole, then split at every point (and every pair of points when short), then
// byte by byte; each must give the same outcome.
void expect_split_invariant(std::string_view input, resp_limits limits = {}) {
    const outcome whole = decode_whole(input, limits);
    for (std::size_t i = 0; i <= input.size(); ++i) {
        ASSERT_EQ(decode_chunks({input.substr(0, i), input.substr(i)}, limits), whole)
            << "split at " << i;
    }
    if (input.size() <= 64) {
        for (std::size_t i = 0; i <= input.size(); ++i) {
            for (std::size_t j = i; j <= input.size(); ++j) {
                const auto chunks = {input.substr(0, i), input.substr(i, j - i), input.substr(j)};
                ASSERT_EQ(decode_chunks(chunks, limits), whole) << "split at " << i << ", " << j;
            }
        }
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i) {
        bytes.push_back(input.substr(i, 1));
    }
    ASSERT_EQ(decode_chunks(bytes, limits), whole) << "byte by byte";
}

void expect_requests(std::string_view input, const std::vector<request>& expected,
                     resp_limits limits = {}) {
    expect_split_invariant(input, limits);
    const outcome whole = decode_whole(input, limits);
    EXPECT_EQ(whole.requests, expected) << "input: " << input;
    EXPECT_EQ(whole.error, "") << "input: " << input;
}

void expect_error(std::string_view input, const std::string& message,
                  const std::vector<request>& before = {}, resp_limits limits = {}) {
    expect_split_invariant(input, limits);
    const outcome whole = decode_whole(input, limits);
    EXPECT_EQ(whole.requests, before) << "input: " << input;
    EXPECT_EQ(whole.error, message) << "input: " << input;
}

TEST(resp_request_decoder, multibulk_request_decodes_at_every_split_point) {
    expect_requests("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", {{"SET", "key", "value"}});
}

TEST(resp_request_decoder, empty_bulk_argument_is_kept) {
    expect_requests("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", {{"ECHO", ""}});
}

TEST(resp_request_decoder, bulk_payload_is_binary_safe) {
    const std::string payload = "a\r\nb\0*1\r\n$3\r\n\xff\n\r"s;
    const std::string input =
        "*2\r\n$3\r\nSET\r\n$" + std::to_string(payload.size()) + "\r\n" + payload + "\r\n";
    expect_requests(input, {{"SET", payload}});
}

TEST(resp_request_decoder, inline_command_decodes_at_every_split_point) {
    expect_requests("PING\r\n", {{"PING"}});
    expect_requests("SET key value\r\n", {{"SET", "key", "value"}});
}

TEST(resp_request_decoder, inline_line_may_end_in_lf_alone) {
    expect_requests("GET key\nGET other\n", {{"GET", "key"}, {"GET", "other"}});
}

TEST(resp_request_decoder, inline_arguments_split_on_runs_of_spaces_and_tabs) {
    expect_requests("  GET \t  key\t\r\n", {{"GET", "key"}});
}

TEST(resp_request_decoder, empty_inline_line_is_request_with_no_args) {
    expect_requests("\r\n", {{}});
    expect_requests("\n", {{}});
    expect_requests(" \t \r\nPING\r\n", {{}, {"PING"}});
}

TEST(resp_request_decoder, inline_double_quotes_group_and_unescape) {
    expect_requests("SET \"a b\" \"x\\ny\\r\\t\\b\\a\\\\\\\"\"\r\n",
                    {{"SET", "a b", "x\ny\r\t\b\a\\\""}});
    expect_requests("ECHO \"\\x41\\x7a\\xZZ\\q\"\r\n", {{"ECHO", "AzxZZq"}});
    expect_requests("ECHO \"\\x00\"\r\n", {{"ECHO", "\0"s}});
    expect_requests("ECHO \"\" x\r\n", {{"ECHO", "", "x"}});
}

TEST(resp_request_decoder, inline_single_quotes_only_unescape_quote) {
    expect_requests("ECHO 'it\\'s \\n raw'\r\n", {{"ECHO", "it's \\n raw"}});
}

TEST(resp_request_decoder, inline_quote_may_open_inside_a_word) {
    expect_requests("ECHO foo\"bar baz\" next\r\n", {{"ECHO", "foobar baz", "next"}});
}

TEST(resp_request_decoder, inline_unbalanced_quotes_is_error) {
    const std::string message = "Protocol error: unbalanced quotes in request";
    expect_error("SET \"abc\r\n", message);
    expect_error("SET 'abc\n", message);
    expect_error("SET \"abc\\\"\r\n", message);
    expect_error("PING\r\nSET \"a\"b\r\n", message, {{"PING"}});
    expect_error("SET 'a'b\r\n", message);
}

TEST(resp_request_decoder, pipelined_requests_come_out_one_at_a_time_in_order) {
    const std::string input = "*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
    expect_requests(input, {{"PING"}, {"PING"}, {"ECHO", "hi"}});

    resp_request_decoder decoder;
    std::vector<std::string> args;
    const auto first = decoder.feed(input, args);
    EXPECT_EQ(first.status, decode_status::request);
    EXPECT_EQ(first.consumed, 14u);
    EXPECT_EQ(args, request{"PING"});
    const auto second = decoder.feed(std::string_view(input).substr(14), args);
    EXPECT_EQ(second.status, decode_status::request);
    EXPECT_EQ(second.consumed, 6u);
    EXPECT_EQ(args, request{"PING"});
}

TEST(resp_request_decoder, many_pipelined_requests_in_one_buffer) {
    std::string input;
    std::vector<request> expected;
    for (int i = 0; i < 100; ++i) {
        const std::string key = "key" + std::to_string(i);
        input += "*2\r\n$3\r\nGET\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
        expected.push_back({"GET", key});
    }
    EXPECT_EQ(decode_whole(input).requests, expected);
}

TEST(resp_request_decoder, negative_multibulk_count_is_ignored_then_next_command_decoded) {
    expect_requests("*-10\r\n*1\r\n$4\r\nPING\r\n", {{"PING"}});
    expect_requests("*-1\r\nPING\r\n", {{"PING"}});
}

TEST(resp_request_decoder, zero_multibulk_count_is_ignored) {
    expect_requests("*0\r\n*0\r\n*1\r\n$4\r\nPING\r\n", {{"PING"}});
    EXPECT_FALSE(decode_whole("*0\r\n").in_request);
}

TEST(resp_request_decoder, first_byte_decides_multibulk_or_inline) {
    expect_requests(" *1\r\n", {{"*1"}});
    expect_requests("$3\r\n", {{"$3"}});
}

}  // namespace

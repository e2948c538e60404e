// Limits that change with the connection: the pre-authentication limits (Redis 7 wording,
// CVE-2021-32675), the per-request byte limit (--query-buffer-limit), and set_limits() taking
// effect at the next request. Every input is also fed at every split point.
#include "conveyor/protocol/resp_decoder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

using conveyor::protocol::decode_result;
using conveyor::protocol::decode_status;
using conveyor::protocol::resp_limits;
using conveyor::protocol::resp_request_decoder;

namespace {

struct outcome {
    std::vector<std::vector<std::string>> requests;
    std::string error;
};

outcome decode_chunked(std::string_view input, const resp_limits& limits, std::size_t step) {
    resp_request_decoder decoder(limits);
    std::vector<std::string> args;
    std::string buffer;
    outcome out;
    for (std::size_t at = 0; at < input.size(); at += step) {
        buffer.append(input.substr(at, step));
        decode_result r{};
        while (true) {
            r = decoder.feed(buffer, args);
            buffer.erase(0, r.consumed);
            if (r.status != decode_status::request) break;
            out.requests.push_back(args);
        }
        if (r.status == decode_status::error) {
            out.error = decoder.error_message();
            return out;
        }
    }
    return out;
}

// Decodes whole and in chunks of every size (of 1 to 64 bytes, then of each power of two for
// long inputs); all must agree. Returns the whole-input outcome.
outcome decode(std::string_view input, const resp_limits& limits) {
    auto whole = decode_chunked(input, limits, input.size() == 0 ? 1 : input.size());
    for (std::size_t step = 1; step < input.size(); step = step < 64 ? step + 1 : step * 2) {
        auto split = decode_chunked(input, limits, step);
        EXPECT_EQ(split.error, whole.error) << "chunks of " << step;
        EXPECT_EQ(split.requests, whole.requests) << "chunks of " << step;
    }
    return whole;
}

std::string bulk_request(std::size_t args, std::size_t len) {
    // Appended piece by piece: g++ 12 warns -Wrestrict on "literal" + std::string temporaries.
    std::string s = "*";
    s += std::to_string(args);
    s += "\r\n";
    for (std::size_t i = 0; i < args; ++i) {
        s += '$';
        s += std::to_string(len);
        s += "\r\n";
        s.append(len, 'x');
        s += "\r\n";
    }
    return s;
}

const resp_limits pre_auth = resp_limits::before_auth();

}  // namespace

TEST(resp_request_decoder_limits, unauthenticated_multibulk_over_ten_uses_redis_wording) {
    EXPECT_EQ(decode("*11\r\n", pre_auth).error,
              "Protocol error: unauthenticated multibulk length");
    EXPECT_EQ(decode("*1048576\r\n$536870912\r\n", pre_auth).error,
              "Protocol error: unauthenticated multibulk length");
    // Beyond Redis's absolute maximum it is invalid whoever asks.
    EXPECT_EQ(decode("*3000000000\r\n", pre_auth).error,
              "Protocol error: invalid multibulk length");
}

TEST(resp_request_decoder_limits, unauthenticated_bulk_over_16k_uses_redis_wording) {
    EXPECT_EQ(decode("*1\r\n$16385\r\n", pre_auth).error,
              "Protocol error: unauthenticated bulk length");
    EXPECT_EQ(decode("*1\r\n$536870912\r\n", pre_auth).error,
              "Protocol error: unauthenticated bulk length");
    EXPECT_EQ(decode("*1\r\n$-5\r\n", pre_auth).error, "Protocol error: invalid bulk length");
}

TEST(resp_request_decoder_limits, unauthenticated_limits_accept_auth_sized_requests) {
    auto out = decode(
        "*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$6\r\nsecret\r\n*10\r\n" + std::string() +
            [] {
                std::string s;
                for (int i = 0; i < 10; ++i) s += "$1\r\na\r\n";
                return s;
            }(),
        pre_auth);
    EXPECT_EQ(out.error, "");
    ASSERT_EQ(out.requests.size(), 2u);
    EXPECT_EQ(out.requests[0], (std::vector<std::string>{"AUTH", "user", "secret"}));
    EXPECT_EQ(out.requests[1].size(), 10u);
    EXPECT_EQ(decode(bulk_request(1, 16384), pre_auth).requests.size(), 1u);
}

TEST(resp_request_decoder_limits, unauthenticated_request_bytes_are_bounded) {
    // Ten arguments of 16 KiB are each fine, but the whole request is over 64 KiB.
    EXPECT_EQ(decode(bulk_request(10, 16384), pre_auth).error,
              "Protocol error: unauthenticated request length");
    EXPECT_EQ(decode(bulk_request(3, 16384), pre_auth).error, "");
}

TEST(resp_request_decoder_limits, unauthenticated_inline_line_is_short) {
    EXPECT_EQ(decode(std::string(16 * 1024 + 1, 'a') + "\r\n", pre_auth).error,
              "Protocol error: too big inline request");
    EXPECT_EQ(decode("AUTH secret\r\n", pre_auth).requests.size(), 1u);
}

TEST(resp_request_decoder_limits, request_bytes_limit_counts_declared_lengths) {
    resp_limits limits;
    limits.max_request_bytes = 1000;
    // "*1\r\n" (4) + "$956\r\n" (6) + 956 + CRLF + overhead is exactly 1000 bytes; one more
    // byte of data is over.
    const std::size_t room = 1000 - 4 - 6 - 2 - resp_limits::arg_overhead;
    EXPECT_EQ(decode(bulk_request(1, room), limits).error, "");
    EXPECT_EQ(decode(bulk_request(1, room + 1), limits).error,
              "Protocol error: request exceeds query-buffer-limit");
    // Refused at the header: the declared bytes never need to arrive.
    EXPECT_EQ(decode("*1\r\n$5000\r\n", limits).error,
              "Protocol error: request exceeds query-buffer-limit");
}

TEST(resp_request_decoder_limits, request_bytes_limit_is_per_request) {
    resp_limits limits;
    limits.max_request_bytes = 200;
    std::string many;
    for (int i = 0; i < 50; ++i) many += bulk_request(2, 10);
    auto out = decode(many, limits);
    EXPECT_EQ(out.error, "");
    EXPECT_EQ(out.requests.size(), 50u);
}

TEST(resp_request_decoder_limits, request_bytes_limit_counts_arguments_bookkeeping) {
    resp_limits limits;
    limits.max_request_bytes = 100 * (4 + 2 + resp_limits::arg_overhead);
    EXPECT_EQ(decode(bulk_request(90, 0), limits).error, "");
    EXPECT_EQ(decode(bulk_request(110, 0), limits).error,
              "Protocol error: request exceeds query-buffer-limit");
}

TEST(resp_request_decoder_limits, inline_request_counts_towards_request_bytes) {
    resp_limits limits;
    limits.max_request_bytes = 10;
    EXPECT_EQ(decode("PING\r\n", limits).error, "");
    EXPECT_EQ(decode("ECHO hello-world\r\n", limits).error,
              "Protocol error: request exceeds query-buffer-limit");
}

TEST(resp_request_decoder_limits, set_limits_while_idle_applies_to_next_request) {
    resp_request_decoder decoder(pre_auth);
    std::vector<std::string> args;
    std::string big = bulk_request(1, 20000);
    decoder.set_limits(resp_limits{});
    auto r = decoder.feed(big, args);
    EXPECT_EQ(r.status, decode_status::request);
    EXPECT_EQ(args[0].size(), 20000u);
}

TEST(resp_request_decoder_limits, set_limits_mid_request_waits_for_the_next_one) {
    resp_request_decoder decoder(pre_auth);
    std::vector<std::string> args;
    std::string input = "*2\r\n$4\r\nAUTH\r\n";
    auto r = decoder.feed(input, args);
    ASSERT_EQ(r.status, decode_status::need_more);
    input.erase(0, r.consumed);
    decoder.set_limits(resp_limits{});
    // The request in progress keeps the pre-auth limits.
    input += "$20000\r\n";
    r = decoder.feed(input, args);
    ASSERT_EQ(r.status, decode_status::error);
    EXPECT_EQ(decoder.error_message(), "Protocol error: unauthenticated bulk length");

    resp_request_decoder second(pre_auth);
    std::string two = "*1\r\n$4\r\nPING\r\n";
    r = second.feed(two.substr(0, 6), args);
    ASSERT_EQ(r.status, decode_status::need_more);
    second.set_limits(resp_limits{});
    std::string rest = two.substr(r.consumed) + bulk_request(1, 20000);
    r = second.feed(rest, args);
    ASSERT_EQ(r.status, decode_status::request);
    EXPECT_EQ(args, std::vector<std::string>{"PING"});
    rest.erase(0, r.consumed);
    r = second.feed(rest, args);
    ASSERT_EQ(r.status, decode_status::request);
    EXPECT_EQ(args[0].size(), 20000u);
    EXPECT_FALSE(second.limits().unauthenticated);
}

TEST(resp_request_decoder_limits, authenticated_limits_word_refusals_as_invalid) {
    resp_limits limits;
    limits.max_args = 10;
    limits.max_bulk_len = 100;
    EXPECT_EQ(decode("*11\r\n", limits).error, "Protocol error: invalid multibulk length");
    EXPECT_EQ(decode("*1\r\n$101\r\n", limits).error, "Protocol error: invalid bulk length");
}

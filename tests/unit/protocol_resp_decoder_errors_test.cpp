// Protocol errors, limits and memory bounds of the request decoder. Error texts are Redis 7's
// (networking.c), so clients and tests written against Redis see the same replies.
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

// Feeds `input` whole, then at every split point, byte by byte and in every chunking
// in between; returns the error message (empty when none) after checking they all agree.
std::string decode_error(std::string_view input, resp_limits limits = {}) {
    std::string first_message;
    for (std::size_t chunk = 0; chunk <= input.size(); ++chunk) {
        resp_request_decoder decoder(limits);
        std::vector<std::string> args;
        std::string buffer;
        std::string message;
        // chunk == 0 means the whole input at once; otherwise `chunk` bytes at a time.
        const std::size_t step = chunk == 0 ? input.size() : chunk;
        for (std::size_t at = 0; at < input.size() && message.empty(); at += step) {
            buffer.append(input.substr(at, step));
            decode_result result{};
            do {
                result = decoder.feed(buffer, args);
                buffer.erase(0, result.consumed);
            } while (result.status == decode_status::request);
            if (result.status == decode_status::error) {
                message = decoder.error_message();
            }
        }
        if (chunk == 0) {
            first_message = message;
        } else {
            EXPECT_EQ(message, first_message) << "chunks of " << chunk << " bytes";
        }
    }
    return first_message;
}

constexpr const char* invalid_multibulk = "Protocol error: invalid multibulk length";
constexpr const char* invalid_bulk = "Protocol error: invalid bulk length";

TEST(resp_request_decoder_errors, multibulk_count_beyond_redis_maximum_is_invalid) {
    resp_limits generous;
    generous.max_args = std::size_t{1} << 40;
    EXPECT_EQ(decode_error("*3000000000\r\n", generous), invalid_multibulk);
    EXPECT_EQ(decode_error("*1073741825\r\n", generous), invalid_multibulk);
    EXPECT_EQ(decode_error("*3000000000\r\n"), invalid_multibulk);
}

TEST(resp_request_decoder_errors, multibulk_count_beyond_max_args_is_invalid) {
    resp_limits limits;
    limits.max_args = 4;
    EXPECT_EQ(decode_error("*5\r\n", limits), invalid_multibulk);
    EXPECT_EQ(decode_error("*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n", limits), "");
}

TEST(resp_request_decoder_errors, multibulk_count_must_be_a_strict_number) {
    for (const char* input : {"*abc\r\n", "*\r\n", "*+1\r\n", "*01\r\n", "*-0\r\n", "* 1\r\n",
                              "*1 \r\n", "*1\r2\r\n", "*99999999999999999999\r\n", "*-\r\n"}) {
        EXPECT_EQ(decode_error(input), invalid_multibulk) << input;
    }
}

TEST(resp_request_decoder_errors, bulk_length_beyond_max_bulk_len_is_invalid) {
    EXPECT_EQ(decode_error("*1\r\n$2000000000\r\n"), invalid_bulk);
    EXPECT_EQ(decode_error("*1\r\n$9223372036854775808\r\n"), invalid_bulk);
}

TEST(resp_request_decoder_errors, negative_or_non_numeric_bulk_length_is_invalid) {
    for (const char* input : {"*1\r\n$-10\r\n", "*1\r\n$-1\r\n", "*1\r\n$blabla\r\n", "*1\r\n$\r\n",
                              "*1\r\n$03\r\nabc\r\n", "*1\r\n$+3\r\nabc\r\n"}) {
        EXPECT_EQ(decode_error(input), invalid_bulk) << input;
    }
}

TEST(resp_request_decoder_errors, missing_dollar_names_the_byte_found) {
    EXPECT_EQ(decode_error("*1\r\nfoo\r\n"), "Protocol error: expected '$', got 'f'");
    EXPECT_EQ(decode_error("*2\r\n$1\r\na\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
    EXPECT_EQ(decode_error("*1\r\n\r\n"), "Protocol error: expected '$', got '\r'");
}

TEST(resp_request_decoder_errors, bulk_not_followed_by_crlf_is_error) {
    const std::string message = "Protocol error: expected CRLF after bulk data";
    EXPECT_EQ(decode_error("*1\r\n$3\r\nfooXY"), message);
    EXPECT_EQ(decode_error("*1\r\n$3\r\nfoo\rX"), message);
    EXPECT_EQ(decode_error("*1\r\n$3\r\nfoo\n\r"), message);
    EXPECT_EQ(decode_error("*1\r\n$3\r\nfoobar\r\n"), message);
}

TEST(resp_request_decoder_errors, small_max_bulk_len_is_honoured) {
    resp_limits limits;
    limits.max_bulk_len = 8;
    EXPECT_EQ(decode_error("*1\r\n$8\r\n12345678\r\n", limits), "");
    EXPECT_EQ(decode_error("*1\r\n$9\r\n123456789\r\n", limits), invalid_bulk);
}

TEST(resp_request_decoder_errors, header_line_without_crlf_beyond_limit_is_too_big) {
    resp_limits limits;
    limits.max_inline_len = 16;
    EXPECT_EQ(decode_error(std::string("*").append(20, '1'), limits),
              "Protocol error: too big mbulk count string");
    EXPECT_EQ(decode_error(std::string("*1\r\n$").append(20, '1'), limits),
              "Protocol error: too big bulk count string");
    // Complete but over-long lines fail the same way, whatever the split.
    EXPECT_EQ(decode_error(std::string("*").append(20, '1').append("\r\n"), limits),
              "Protocol error: too big mbulk count string");
}

TEST(resp_request_decoder_errors, inline_line_beyond_limit_is_too_big) {
    resp_limits limits;
    limits.max_inline_len = 16;
    const std::string message = "Protocol error: too big inline request";
    EXPECT_EQ(decode_error(std::string(17, 'a'), limits), message);
    EXPECT_EQ(decode_error(std::string(17, 'a') + "\r\n", limits), message);
    EXPECT_EQ(decode_error(std::string(16, 'a') + "\r\n", limits), "");
    EXPECT_EQ(decode_error(std::string(16, 'a') + "\r", limits), "");
    EXPECT_EQ(decode_error(std::string(16, 'a'), limits), "");
}

TEST(resp_request_decoder_errors, partial_header_line_is_not_consumed) {
    resp_request_decoder decoder;
    std::vector<std::string> args;
    EXPECT_EQ(decoder.feed("*2\r\n$3", args).consumed, 4u);
    EXPECT_TRUE(decoder.in_request());
    EXPECT_EQ(decoder.feed("$3\r", args).consumed, 0u);
    const auto result = decoder.feed("$3\r\nfo", args);
    EXPECT_EQ(result.status, decode_status::need_more);
    EXPECT_EQ(result.consumed, 6u);  // partial bulk bytes are consumed
    EXPECT_EQ(args, std::vector<std::string>{"fo"});
}

TEST(resp_request_decoder_errors, error_is_sticky_until_reset) {
    resp_request_decoder decoder;
    std::vector<std::string> args;
    EXPECT_EQ(decoder.feed("*x\r\n", args).status, decode_status::error);
    EXPECT_FALSE(decoder.in_request());
    EXPECT_EQ(decoder.feed("PING\r\n", args).status, decode_status::error);
    EXPECT_EQ(decoder.error_message(), invalid_multibulk);
    decoder.reset();
    EXPECT_EQ(decoder.error_message(), "");
    EXPECT_EQ(decoder.feed("PING\r\n", args).status, decode_status::request);
    EXPECT_EQ(args, std::vector<std::string>{"PING"});
}

TEST(resp_request_decoder_errors, reset_drops_partial_request) {
    resp_request_decoder decoder;
    std::vector<std::string> args;
    decoder.feed("*2\r\n$3\r\nGET\r\n", args);
    EXPECT_TRUE(decoder.in_request());
    decoder.reset();
    EXPECT_FALSE(decoder.in_request());
    EXPECT_EQ(decoder.feed("*1\r\n$4\r\nPING\r\n", args).status, decode_status::request);
    EXPECT_EQ(args, std::vector<std::string>{"PING"});
}

TEST(resp_request_decoder_errors, declared_counts_and_lengths_do_not_size_allocations) {
    resp_request_decoder decoder;
    std::vector<std::string> args;
    // 1 Mi arguments declared, 512 MiB declared for the first: neither is reserved up front.
    const auto result = decoder.feed("*1048576\r\n$536870912\r\nabc", args);
    EXPECT_EQ(result.status, decode_status::need_more);
    EXPECT_LE(args.capacity(), 1024u);
    ASSERT_EQ(args.size(), 1u);
    EXPECT_EQ(args[0], "abc");
    EXPECT_LE(args[0].capacity(), 64u * 1024u);
}

TEST(resp_request_decoder_errors, large_bulk_fed_in_chunks_is_consumed_as_it_arrives) {
    std::string payload(std::size_t{1024} * 1024, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(i * 131 % 251);
    }
    const std::string input = "*2\r\n$3\r\nSET\r\n$1048576\r\n" + payload + "\r\n";
    resp_request_decoder decoder;
    std::vector<std::string> args;
    std::string buffer;
    std::size_t requests = 0;
    constexpr std::size_t chunk = 4096 + 7;  // not a divisor of the framing
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        buffer.append(input.substr(at, chunk));
        const auto result = decoder.feed(buffer, args);
        ASSERT_NE(result.status, decode_status::error) << decoder.error_message();
        buffer.erase(0, result.consumed);
        requests += result.status == decode_status::request ? 1 : 0;
        ASSERT_LT(buffer.size(), 32u) << "the decoder keeps at most a partial line";
    }
    ASSERT_EQ(requests, 1u);
    ASSERT_EQ(args.size(), 2u);
    EXPECT_EQ(args[0], "SET");
    EXPECT_TRUE(args[1] == payload);
}

}  // namespace

// Byte-exact replies in RESP2 and RESP3.
#include "conveyor/protocol/resp_writer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>

using namespace std::string_literals;
using conveyor::protocol::resp_version;
using conveyor::protocol::resp_writer;

namespace {

std::string write(resp_version version, const std::function<void(resp_writer&)>& body) {
    std::string out;
    resp_writer writer(out, version);
    body(writer);
    return out;
}

std::string resp2(const std::function<void(resp_writer&)>& body) {
    return write(resp_version::resp2, body);
}

std::string resp3(const std::function<void(resp_writer&)>& body) {
    return write(resp_version::resp3, body);
}

TEST(resp_writer, simple_string_is_the_same_in_both_versions) {
    EXPECT_EQ(resp2([](auto& w) { w.simple("OK"); }), "+OK\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.simple("OK"); }), "+OK\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.simple(""); }), "+\r\n");
}

TEST(resp_writer, line_replies_turn_cr_and_lf_into_spaces) {
    EXPECT_EQ(resp2([](auto& w) { w.simple("a\r\nb\nc\r"); }), "+a  b c \r\n");
    EXPECT_EQ(resp3([](auto& w) { w.error("ERR bad\r\n+OK"); }), "-ERR bad  +OK\r\n");
}

TEST(resp_writer, error_keeps_its_code) {
    EXPECT_EQ(resp2([](auto& w) { w.error("ERR unknown command 'x'"); }),
              "-ERR unknown command 'x'\r\n");
}

TEST(resp_writer, integer_covers_the_int64_range) {
    EXPECT_EQ(resp2([](auto& w) { w.integer(0); }), ":0\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.integer(-42); }), ":-42\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.integer(std::numeric_limits<std::int64_t>::max()); }),
              ":9223372036854775807\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.integer(std::numeric_limits<std::int64_t>::min()); }),
              ":-9223372036854775808\r\n");
}

TEST(resp_writer, bulk_is_length_prefixed_and_binary_safe) {
    EXPECT_EQ(resp2([](auto& w) { w.bulk("hello"); }), "$5\r\nhello\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.bulk(""); }), "$0\r\n\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.bulk("a\r\n\0b"s); }), "$5\r\na\r\n\0b\r\n"s);
}

TEST(resp_writer, null_differs_between_versions) {
    EXPECT_EQ(resp2([](auto& w) { w.null(); }), "$-1\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.null(); }), "_\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.null_array(); }), "*-1\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.null_array(); }), "_\r\n");
}

TEST(resp_writer, aggregate_headers) {
    EXPECT_EQ(resp2([](auto& w) { w.array_header(3); }), "*3\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.array_header(0); }), "*0\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.map_header(2); }), "%2\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.map_header(2); }), "*4\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.set_header(5); }), "~5\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.set_header(5); }), "*5\r\n");
}

TEST(resp_writer, boolean_is_integer_in_resp2) {
    EXPECT_EQ(resp3([](auto& w) { w.boolean(true); }), "#t\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.boolean(false); }), "#f\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.boolean(true); }), ":1\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.boolean(false); }), ":0\r\n");
}

TEST(resp_writer, double_uses_shortest_round_trip_text) {
    EXPECT_EQ(resp3([](auto& w) { w.dbl(1.5); }), ",1.5\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(3.0); }), ",3\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(0.1); }), ",0.1\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(-2.5e-7); }), ",-2.5e-07\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(1e300); }), ",1e+300\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.dbl(1.5); }), "$3\r\n1.5\r\n");
}

TEST(resp_writer, double_special_values_use_resp3_spelling) {
    const double inf = std::numeric_limits<double>::infinity();
    EXPECT_EQ(resp3([&](auto& w) { w.dbl(inf); }), ",inf\r\n");
    EXPECT_EQ(resp3([&](auto& w) { w.dbl(-inf); }), ",-inf\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(std::nan("")); }), ",nan\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.dbl(-std::nan("")); }), ",nan\r\n");
    EXPECT_EQ(resp2([&](auto& w) { w.dbl(-inf); }), "$4\r\n-inf\r\n");
}

TEST(resp_writer, verbatim_length_counts_the_format_prefix) {
    EXPECT_EQ(resp3([](auto& w) { w.verbatim("hello"); }), "=9\r\ntxt:hello\r\n");
    EXPECT_EQ(resp3([](auto& w) { w.verbatim("a\r\nb"); }), "=8\r\ntxt:a\r\nb\r\n");
    EXPECT_EQ(resp2([](auto& w) { w.verbatim("hello"); }), "$5\r\nhello\r\n");
}

TEST(resp_writer, replies_append_to_the_callers_buffer) {
    std::string out = "+PREVIOUS\r\n";
    resp_writer writer(out, resp_version::resp2);
    writer.map_header(1);
    writer.bulk("k");
    writer.integer(1);
    writer.set_version(resp_version::resp3);
    EXPECT_EQ(writer.version(), resp_version::resp3);
    writer.null();
    EXPECT_EQ(&writer.buffer(), &out);
    EXPECT_EQ(out, "+PREVIOUS\r\n*2\r\n$1\r\nk\r\n:1\r\n_\r\n");
}

}  // namespace

// The one duration syntax of every flag, config key and CLI option (protocol/duration.hpp).
#include <conveyor/protocol/duration.hpp>

#include <gtest/gtest.h>

using conveyor::protocol::bare_unit;
using conveyor::protocol::duration_errc;
using conveyor::protocol::max_duration_ms;
using conveyor::protocol::parse_duration;

namespace {

std::int64_t ms(std::string_view text, bare_unit bare = bare_unit::milliseconds) {
    const auto parsed = parse_duration(text, bare);
    EXPECT_EQ(parsed.error, duration_errc::ok) << text;
    return parsed.ms;
}

duration_errc error(std::string_view text, bare_unit bare = bare_unit::milliseconds) {
    return parse_duration(text, bare).error;
}

}  // namespace

TEST(duration, every_unit_is_accepted_whatever_the_bare_unit) {
    for (const auto bare : {bare_unit::milliseconds, bare_unit::seconds}) {
        EXPECT_EQ(ms("500ms", bare), 500);
        EXPECT_EQ(ms("30s", bare), 30'000);
        EXPECT_EQ(ms("5m", bare), 300'000);
        EXPECT_EQ(ms("1h", bare), 3'600'000);
        EXPECT_EQ(ms("2d", bare), 172'800'000);
        EXPECT_EQ(ms("0s", bare), 0);
    }
}

TEST(duration, a_bare_number_is_in_the_flags_unit) {
    EXPECT_EQ(ms("1500"), 1500);
    EXPECT_EQ(ms("10", bare_unit::seconds), 10'000);
    EXPECT_EQ(ms("0", bare_unit::seconds), 0);
}

TEST(duration, decimal_fractions_are_exact) {
    EXPECT_EQ(ms("1.5s"), 1500);
    EXPECT_EQ(ms("0.5", bare_unit::seconds), 500);
    EXPECT_EQ(ms("0.25h"), 900'000);
    EXPECT_EQ(ms("2.0ms"), 2);
    EXPECT_EQ(error("0.0001s"), duration_errc::not_whole_ms);
    EXPECT_EQ(error("1.5ms"), duration_errc::not_whole_ms);
    EXPECT_EQ(error("1.5"), duration_errc::not_whole_ms);
}

TEST(duration, malformed_text_is_refused) {
    for (const char* text : {"", "s", "ms", "-1", "+1", " 1", "1 ", "1x", "1S", "1sec", "1.s",
                             ".5s", "1.2.3s", "10ms5", "1e3", "0x10", "1_000"}) {
        EXPECT_EQ(error(text), duration_errc::malformed) << text;
    }
}

TEST(duration, the_range_ends_at_100_years_inclusive) {
    EXPECT_EQ(ms("3153600000000ms"), max_duration_ms);
    EXPECT_EQ(ms("36500d"), max_duration_ms);
    EXPECT_EQ(ms("3153600000", bare_unit::seconds), max_duration_ms);
    EXPECT_EQ(error("3153600000001"), duration_errc::out_of_range);
    EXPECT_EQ(error("36500.001d"), duration_errc::out_of_range);
    EXPECT_EQ(error("999999999999999999d"), duration_errc::out_of_range);
    EXPECT_EQ(error("99999999999999999999"), duration_errc::out_of_range);  // past 64 bits
    EXPECT_EQ(parse_duration("61s", bare_unit::seconds, 60'000).error, duration_errc::out_of_range);
}

TEST(duration, error_texts_name_the_value_and_the_forms) {
    using conveyor::protocol::duration_error_text;
    EXPECT_EQ(
        duration_error_text("10x", parse_duration("10x", bare_unit::seconds), bare_unit::seconds),
        "'10x' is not a duration (500ms, 30s, 1.5s, 5m, 1h, 2d; a bare number is seconds)");
    EXPECT_EQ(duration_error_text("0.1ms", parse_duration("0.1ms", bare_unit::milliseconds),
                                  bare_unit::milliseconds),
              "'0.1ms' is not a whole number of milliseconds");
    EXPECT_EQ(duration_error_text("200y", parse_duration("36501d", bare_unit::milliseconds),
                                  bare_unit::milliseconds),
              "'200y' is out of range (max 3153600000000 ms)");
    EXPECT_EQ(
        duration_error_text("5s", parse_duration("5s", bare_unit::seconds), bare_unit::seconds),
        "");
}

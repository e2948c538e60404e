// log_text (client text made safe for one log line) and log_limiter (lines per client host per
// window, with the count of those suppressed), with time as a value.
#include <conveyor/runtime/log_limiter.hpp>
#include <conveyor/runtime/log_text.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace conveyor::server;
using namespace std::chrono_literals;
using clock_type = log_limiter::clock;

TEST(LogText, PlainTextIsUnchanged) {
    EXPECT_EQ(log_text("alice"), "alice");
    EXPECT_EQ(log_text("queue-1:x=y, z"), "queue-1:x=y, z");
    EXPECT_EQ(log_text(""), "");
}

TEST(LogText, LineBreaksCannotStartAForgedLine) {
    const std::string forged = "x\r\n[2026-01-01 00:00:00.000] [info] AUTH ok for admin";
    const std::string out = log_text(forged);
    EXPECT_EQ(out.find('\n'), std::string::npos);
    EXPECT_EQ(out.find('\r'), std::string::npos);
    EXPECT_EQ(out.rfind("x\\x0D\\x0A[2026", 0), 0u) << out;
}

TEST(LogText, ControlBytesAndEscapeCodesAreShownAsHex) {
    EXPECT_EQ(log_text(std::string("a\0b", 3)), "a\\x00b");
    EXPECT_EQ(log_text("\x1b[2J\x1b]0;title\x07"), "\\x1B[2J\\x1B]0;title\\x07");
    EXPECT_EQ(log_text("tab\there\x7f"), "tab\\x09here\\x7F");
}

TEST(LogText, BackslashIsDoubledSoEscapesAreUnambiguous) {
    EXPECT_EQ(log_text("a\\x0Ab"), "a\\\\x0Ab");
}

TEST(LogText, Utf8IsKeptAndInvalidBytesAreShownAsHex) {
    EXPECT_EQ(log_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
              "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    EXPECT_EQ(log_text("\xff\xfe"), "\\xFF\\xFE");
    EXPECT_EQ(log_text("\xc0\xaf"), "\\xC0\\xAF");                    // overlong '/'
    EXPECT_EQ(log_text("\xed\xa0\x80"), "\\xED\\xA0\\x80");           // a surrogate
    EXPECT_EQ(log_text("\xe2\x82"), "\\xE2\\x82");                    // cut short
    EXPECT_EQ(log_text("\xf4\x90\x80\x80"), "\\xF4\\x90\\x80\\x80");  // past U+10FFFF
}

TEST(LogText, C1ControlsLineSeparatorsAndBidiOverridesAreEscaped) {
    EXPECT_EQ(log_text("\xc2\x9b"
                       "31m"),
              "\\xC2\\x9B31m");  // U+009B, a CSI
    EXPECT_EQ(log_text("a\xe2\x80\xa8"
                       "b"),
              "a\\xE2\\x80\\xA8b");  // U+2028
    EXPECT_EQ(log_text("\xe2\x80\xae"
                       "cba"),
              "\\xE2\\x80\\xAEcba");  // U+202E
}

TEST(LogText, LongTextIsCutWithTheCountOfBytesLeftOut) {
    const std::string long_name(1000, 'a');
    EXPECT_EQ(log_text(long_name, 10), "aaaaaaaaaa...(990 more bytes)");
    EXPECT_EQ(log_text(long_name).size(),
              log_text_max_bytes + std::string("...(744 more bytes)").size());
    // Never inside a character: the euro sign (3 bytes) does not fit in the 2 left.
    EXPECT_EQ(log_text("abcd\xe2\x82\xac", 6), "abcd...(3 more bytes)");
}

TEST(PeerHost, DropsThePort) {
    EXPECT_EQ(peer_host("127.0.0.1:50412"), "127.0.0.1");
    EXPECT_EQ(peer_host("::1:50412"), "::1");
    EXPECT_EQ(peer_host("unix"), "unix");
}

TEST(LogLimiter, AllowsTheBudgetThenSuppressesAndCountsUntilTheWindowEnds) {
    log_limiter limiter({3, 5s, 100});
    const auto t0 = clock_type::time_point{} + 1h;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.admit("10.0.0.1", t0 + i * 1ms).write);
    for (int i = 0; i < 7; ++i) EXPECT_FALSE(limiter.admit("10.0.0.1", t0 + 1s).write);
    // Another host has its own budget.
    EXPECT_TRUE(limiter.admit("10.0.0.2", t0 + 1s).write);
    EXPECT_FALSE(limiter.admit("10.0.0.1", t0 + 4999ms).write);
    // The next window: the line is written with the count of the 8 suppressed before.
    const auto next = limiter.admit("10.0.0.1", t0 + 5s);
    EXPECT_TRUE(next.write);
    EXPECT_EQ(next.suppressed, 8u);
    EXPECT_EQ(limiter.admit("10.0.0.1", t0 + 5s).suppressed, 0u);
}

TEST(LogLimiter, ExpireReportsEachSuppressedCountOnceAndForgetsQuietHosts) {
    log_limiter limiter({1, 5s, 100});
    const auto t0 = clock_type::time_point{} + 1h;
    EXPECT_TRUE(limiter.admit("a", t0).write);
    EXPECT_FALSE(limiter.admit("a", t0).write);
    EXPECT_FALSE(limiter.admit("a", t0).write);
    EXPECT_TRUE(limiter.admit("b", t0).write);
    EXPECT_TRUE(limiter.expire(t0 + 4s).empty());
    const auto ended = limiter.expire(t0 + 5s);
    ASSERT_EQ(ended.size(), 1u);
    EXPECT_EQ(ended[0].key, "a");
    EXPECT_EQ(ended[0].suppressed, 2u);
    EXPECT_EQ(limiter.keys(), 0u);
    EXPECT_TRUE(limiter.expire(t0 + 20s).empty());
    // After expiry a host starts a fresh window with nothing left to report.
    const auto again = limiter.admit("a", t0 + 21s);
    EXPECT_TRUE(again.write);
    EXPECT_EQ(again.suppressed, 0u);
}

TEST(LogLimiter, ManyHostsDoNotGrowItPastItsBound) {
    log_limiter limiter({1, 5s, 4});
    const auto t0 = clock_type::time_point{} + 1h;
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(limiter.admit(std::to_string(i), t0).write);
    EXPECT_EQ(limiter.keys(), 4u);
    // Once the windows are over, new hosts take their places.
    EXPECT_TRUE(limiter.admit("new", t0 + 6s).write);
    EXPECT_EQ(limiter.keys(), 1u);
}

}  // namespace

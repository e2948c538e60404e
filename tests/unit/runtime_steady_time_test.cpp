// broker_service's conversion of the core's monotonic microseconds to steady_clock time points:
// saturating, so a deadline too far ahead is "never" instead of a time in the past (which
// fired the deadline timer again at once, forever).
#include <conveyor/runtime/broker_service.hpp>

#include <gtest/gtest.h>

#include <conveyor/core/types.hpp>

#include <chrono>
#include <cstdint>
#include <limits>

namespace {

using conveyor::server::steady_from_mono;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::steady_clock;

constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();

std::int64_t us_of(steady_clock::time_point t) {
    return duration_cast<microseconds>(t.time_since_epoch()).count();
}

TEST(steady_from_mono, converts_times_in_range_exactly) {
    EXPECT_EQ(us_of(steady_from_mono(1'000'000, 250)), 999'750);
    EXPECT_EQ(us_of(steady_from_mono(-5, -10)), 5);
    const std::int64_t far = 5'000'000'000 + conveyor::core::max_duration_us;
    EXPECT_EQ(us_of(steady_from_mono(far, 0)), far);  // 100 years ahead still fits
}

TEST(steady_from_mono, a_deadline_past_the_clock_is_never_not_the_past) {
    const auto now = steady_clock::now();
    // INT64_MAX us, what add_ms used to give for a huge DELAY: 1000x past the nanosecond range.
    EXPECT_EQ(steady_from_mono(i64_max, 0), steady_clock::time_point::max());
    EXPECT_EQ(steady_from_mono(i64_max, 123'456), steady_clock::time_point::max());
    EXPECT_GT(steady_from_mono(i64_max / 1000 + 1, 0), now);
    EXPECT_EQ(steady_from_mono(i64_max, i64_min), steady_clock::time_point::max());  // overflow
}

TEST(steady_from_mono, a_time_before_the_clock_saturates_low) {
    EXPECT_EQ(steady_from_mono(i64_min, 0), steady_clock::time_point::min());
    EXPECT_EQ(steady_from_mono(i64_min, 1), steady_clock::time_point::min());  // overflow
    EXPECT_LT(steady_from_mono(-1, i64_max), steady_clock::now());
}

}  // namespace

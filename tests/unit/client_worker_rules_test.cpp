// The worker runtime's pure rules: soft limits, reconnect backoff, lease lengths, capacity.
#include <conveyor/client/worker.hpp>

#include <gtest/gtest.h>

namespace cc = conveyor::client;
using namespace std::chrono_literals;

TEST(client_worker_rules, soft_limit_defaults_to_a_tenth_of_the_hard_limit_below_fifty_seconds) {
    EXPECT_EQ(cc::soft_limit(1000ms, std::nullopt), 900ms);
    EXPECT_EQ(cc::soft_limit(10'000ms, std::nullopt), 9000ms);
    EXPECT_EQ(cc::soft_limit(50'000ms, std::nullopt), 45'000ms);
}

TEST(client_worker_rules, soft_limit_grace_is_capped_at_five_seconds) {
    EXPECT_EQ(cc::soft_limit(60'000ms, std::nullopt), 55'000ms);
    EXPECT_EQ(cc::soft_limit(3'600'000ms, std::nullopt), 3'595'000ms);
}

TEST(client_worker_rules, configured_soft_grace_wins_and_never_goes_below_zero) {
    EXPECT_EQ(cc::soft_limit(1000ms, 200ms), 800ms);
    EXPECT_EQ(cc::soft_limit(1000ms, 0ms), 1000ms);
    EXPECT_EQ(cc::soft_limit(1000ms, 5000ms), 0ms);
}

TEST(client_worker_rules, reconnect_delay_doubles_from_min_and_is_capped_at_max) {
    EXPECT_EQ(cc::reconnect_delay(0, 100ms, 5000ms), 0ms);
    EXPECT_EQ(cc::reconnect_delay(1, 100ms, 5000ms), 100ms);
    EXPECT_EQ(cc::reconnect_delay(2, 100ms, 5000ms), 200ms);
    EXPECT_EQ(cc::reconnect_delay(3, 100ms, 5000ms), 400ms);
    EXPECT_EQ(cc::reconnect_delay(6, 100ms, 5000ms), 3200ms);
    EXPECT_EQ(cc::reconnect_delay(7, 100ms, 5000ms), 5000ms);
    EXPECT_EQ(cc::reconnect_delay(1000, 100ms, 5000ms), 5000ms);  // no overflow
}

TEST(client_worker_rules, kept_lease_is_hard_limit_plus_margin_else_default_else_granted) {
    cc::worker_options o;
    o.lease_margin = 5000ms;
    EXPECT_EQ(cc::kept_lease(2000ms, 7000ms, o), 7000ms);
    EXPECT_EQ(cc::kept_lease(0ms, 30'000ms, o), 30'000ms);  // what the broker granted
    o.default_lease = 12'000ms;
    EXPECT_EQ(cc::kept_lease(0ms, 30'000ms, o), 12'000ms);
    EXPECT_EQ(cc::kept_lease(1000ms, 30'000ms, o), 6000ms);
}

TEST(client_worker_rules, leases_are_extended_every_third_of_the_lease) {
    EXPECT_EQ(cc::extend_interval(30'000ms), 10'000ms);
    EXPECT_EQ(cc::extend_interval(900ms), 300ms);
    EXPECT_EQ(cc::extend_interval(3ms), 10ms);  // a floor, so tiny leases do not spin
}

TEST(client_worker_rules, capacity_is_running_slots_plus_prefetch_per_slot) {
    EXPECT_EQ(cc::lease_capacity(4, 1), 8u);
    EXPECT_EQ(cc::lease_capacity(4, 0), 4u);
    EXPECT_EQ(cc::lease_capacity(1, 3), 4u);
    EXPECT_EQ(cc::lease_capacity(0, 1), 2u);  // at least one slot
}

// The one range of durations and times (core::max_duration_ms, 100 years): options past it are
// refused, every deadline the core computes stays within it, and replay clamps a record that
// a log written before the range existed holds.
#include "core_fixture.hpp"

#include <limits>

namespace conveyor::core::testing {
namespace {

constexpr std::int64_t huge = std::numeric_limits<std::int64_t>::max();

class time_range_test : public core_test {
protected:
    std::vector<record> emitted;

    void SetUp() override {
        b.set_record_sink([this](const record& r) { emitted.push_back(r); });
    }
    // Every record emitted so far is within range, and so is the next deadline.
    void expect_all_in_range() {
        for (const record& r : emitted) {
            EXPECT_TRUE(record_times_in_range(r)) << record_name(r);
        }
        const auto next = b.next_deadline();
        if (next) {
            EXPECT_LE(*next, now.mono_us + max_duration_us);
        }
    }
    std::string error_of(enqueue_options o) {
        enqueue_result r = b.enqueue("q", "x", o, now);
        EXPECT_EQ(r.status, op_status::invalid);
        return r.error;
    }
};

TEST(time_range, add_ms_caps_the_duration_and_saturates_the_sum) {
    EXPECT_EQ(add_ms(7, 1000), 7 + 1'000'000);
    EXPECT_EQ(add_ms(7, 0), 7);
    EXPECT_EQ(add_ms(7, -5), 7);
    EXPECT_EQ(add_ms(0, huge), max_duration_us);
    EXPECT_EQ(add_ms(0, max_duration_ms + 1), max_duration_us);
    EXPECT_EQ(add_ms(huge - 5, 1), huge);
    EXPECT_EQ(max_duration_ms, 3'153'600'000'000);
    EXPECT_TRUE(duration_in_range(max_duration_ms));
    EXPECT_FALSE(duration_in_range(max_duration_ms + 1));
    EXPECT_FALSE(duration_in_range(-1));
}

TEST_F(time_range_test, enqueue_refuses_each_duration_past_the_range) {
    const std::string suffix = " is out of range (max 3153600000000 ms)";
    enqueue_options o;
    o.delay_ms = max_duration_ms + 1;
    EXPECT_EQ(error_of(o), "DELAY" + suffix);
    o = {};
    o.ttl_ms = 99999999999999999;
    EXPECT_EQ(error_of(o), "TTL" + suffix);
    o = {};
    o.timeout_ms = huge;
    EXPECT_EQ(error_of(o), "TIMEOUT" + suffix);
    o = {};
    o.backoff_base_ms = 1000;
    o.backoff_max_ms = huge;
    EXPECT_EQ(error_of(o), "BACKOFF" + suffix);
    o = {};
    o.at_unix_ms = now.wall_ms + max_duration_ms + 1;
    EXPECT_EQ(error_of(o), "AT is out of range (max 100 years from now)");
    o.at_unix_ms = huge;
    EXPECT_EQ(error_of(o), "AT is out of range (max 100 years from now)");
    EXPECT_TRUE(emitted.empty());
}

TEST_F(time_range_test, durations_at_the_limit_are_taken) {
    enqueue_options o;
    o.delay_ms = max_duration_ms;
    o.ttl_ms = max_duration_ms;
    o.timeout_ms = max_duration_ms;
    o.backoff_base_ms = max_duration_ms;
    o.backoff_max_ms = max_duration_ms;
    const std::string id = enqueue("q", "x", o);
    EXPECT_EQ(state_of(id), task_state::delayed);
    o = {};
    o.at_unix_ms = now.wall_ms + max_duration_ms;
    enqueue("q", "y", o);
    EXPECT_EQ(b.next_deadline(), now.mono_us + max_duration_us);
    expect_all_in_range();
}

TEST_F(time_range_test, huge_lease_extend_release_and_retry_stay_within_100_years) {
    enqueue("q", "a");
    const std::string lease = lease_one("q", huge);
    ASSERT_FALSE(lease.empty());
    EXPECT_EQ(b.extend(lease, huge, now), op_status::ok);
    EXPECT_EQ(b.release(lease, huge, now), op_status::ok);
    EXPECT_EQ(b.next_deadline(), now.mono_us + max_duration_us);
    expect_all_in_range();

    enqueue("r", "b");
    const std::string second = lease_one("r");
    EXPECT_EQ(b.fail(second, "e", fail_mode::retry_after, huge, now), fail_outcome::retry);
    expect_all_in_range();
}

TEST_F(time_range_test, policy_backoff_and_timeout_at_the_limit_stay_within_100_years) {
    enqueue_options o;
    o.backoff_base_ms = max_duration_ms;
    o.backoff_max_ms = max_duration_ms;
    o.timeout_ms = max_duration_ms;  // the lease adds the grace: clamped to the limit
    enqueue("q", "a", o);
    auto got = lease({"q"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].lease_ms, max_duration_ms);
    EXPECT_EQ(b.fail(got[0].lease, "e", fail_mode::policy, 0, now), fail_outcome::retry);
    expect_all_in_range();
}

TEST(time_range, huge_result_ttl_keeps_the_retention_deadline_in_range) {
    broker_config c = test_config();
    c.result_ttl_ms = huge;
    c.default_lease_ms = huge;
    broker b(c);
    const instant now{5'000'000'000, 1'700'000'000'000};
    ASSERT_EQ(b.enqueue("q", "x", {}, now).status, op_status::ok);
    auto got = b.lease(lease_request{{"q"}, 1, std::nullopt}, now);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(b.next_deadline(), now.mono_us + max_duration_us);
    ASSERT_EQ(b.ack(got[0].lease, "done", now), op_status::ok);
    EXPECT_EQ(b.next_deadline(), now.mono_us + max_duration_us);
}

TEST(time_range, replay_clamps_a_record_past_the_range) {
    // What an older broker logged for `ENQUEUE jobs b DELAY 9223372036854775807`.
    rec_enqueue r;
    r.at = instant{5'000'000'000, 1'700'000'000'000};
    r.id = "b";
    r.queue = "jobs";
    r.payload = "b";
    r.due_us = huge;
    r.ttl_deadline_us = huge;
    r.timeout_ms = huge;
    r.backoff_base_ms = 1000;
    r.backoff_max_ms = huge;
    record rec = r;
    EXPECT_FALSE(record_times_in_range(rec));

    broker b(test_config());
    b.replay(rec);
    EXPECT_EQ(b.next_deadline(), r.at.mono_us + max_duration_us);
    ASSERT_TRUE(b.task("b", r.at).has_value());
    EXPECT_EQ(b.task("b", r.at)->state, task_state::delayed);

    EXPECT_TRUE(clamp_record_times(rec));
    EXPECT_TRUE(record_times_in_range(rec));
    const auto& c = std::get<rec_enqueue>(rec);
    EXPECT_EQ(c.due_us, r.at.mono_us + max_duration_us);
    EXPECT_EQ(c.timeout_ms, max_duration_ms);
    EXPECT_EQ(c.backoff_base_ms, 1000);
    EXPECT_EQ(c.backoff_max_ms, max_duration_ms);
    EXPECT_FALSE(clamp_record_times(rec));  // already in range: unchanged
}

TEST(time_range, replay_clamps_lease_extend_release_and_fail_records) {
    const instant at{5'000'000'000, 1'700'000'000'000};
    const std::int64_t limit = at.mono_us + max_duration_us;
    record lease = rec_lease{at, "t", 1, huge, huge};
    record extend = rec_extend{at, "t", huge};
    record release = rec_release{at, "t", huge};
    record fail = rec_fail{at, "t", "e", false, huge, false};
    for (record* r : {&lease, &extend, &release, &fail}) {
        EXPECT_FALSE(record_times_in_range(*r)) << record_name(*r);
        EXPECT_TRUE(clamp_record_times(*r));
    }
    EXPECT_EQ(std::get<rec_lease>(lease).deadline_us, limit);
    EXPECT_EQ(std::get<rec_lease>(lease).lease_ms, max_duration_ms);
    EXPECT_EQ(std::get<rec_extend>(extend).deadline_us, limit);
    EXPECT_EQ(std::get<rec_release>(release).due_us, limit);
    EXPECT_EQ(std::get<rec_fail>(fail).retry_due_us, limit);
    record ack = rec_ack{at, "t", "r"};
    EXPECT_TRUE(record_times_in_range(ack));
    EXPECT_FALSE(clamp_record_times(ack));
}

}  // namespace
}  // namespace conveyor::core::testing

// Leases: expiry, fencing, extend, release, ack; monotonic time only.
#include "core_fixture.hpp"

namespace conveyor::core::testing {
namespace {

using lease_test = core_test;

TEST_F(lease_test, lease_token_is_id_and_delivery) {
    const std::string id = enqueue_id("q", "job-1");
    auto got = lease({"q"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].id, id);
    EXPECT_EQ(got[0].lease, "job-1#1");
    EXPECT_EQ(got[0].queue, "q");
    EXPECT_EQ(got[0].payload, "payload");
    EXPECT_EQ(got[0].attempt, 1);
    EXPECT_EQ(got[0].lease_ms, 30000);
    EXPECT_EQ(got[0].timeout_ms, 0);
    EXPECT_EQ(state_of(id), task_state::leased);
}

TEST_F(lease_test, ids_with_hash_signs_split_at_the_last_one) {
    enqueue_id("q", "a#b#c");
    const std::string token = lease_one("q");
    EXPECT_EQ(token, "a#b#c#1");
    EXPECT_EQ(b.ack(token, "done", now), op_status::ok);
    EXPECT_EQ(state_of("a#b#c"), task_state::succeeded);
}

TEST_F(lease_test, lease_length_comes_from_for_then_timeout_then_default) {
    enqueue_options with_timeout;
    with_timeout.timeout_ms = 2000;
    enqueue("q", "a", with_timeout);
    enqueue("q", "b", with_timeout);
    enqueue("q", "c");
    auto first = lease({"q"}, 1, 700);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].lease_ms, 700);
    EXPECT_EQ(first[0].timeout_ms, 2000);
    auto second = lease({"q"});
    EXPECT_EQ(second[0].lease_ms, 2000 + 5000);
    auto third = lease({"q"});
    EXPECT_EQ(third[0].lease_ms, 30000);
}

TEST_F(lease_test, lease_expiry_requeues_task) {
    const std::string id = enqueue("q", "x");
    lease_one("q", 1000);
    advance_ms(999);
    EXPECT_EQ(state_of(id), task_state::leased);
    advance_ms(1);
    EXPECT_EQ(state_of(id), task_state::queued);
    auto v = b.task(id, now);
    EXPECT_EQ(v->error, "lease expired");
    EXPECT_EQ(b.stats().tasks_expired, 1u);
    EXPECT_EQ(b.stats().tasks_failed, 1u);
    auto again = lease({"q"});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].attempt, 2);
    EXPECT_EQ(again[0].lease, id + "#2");
}

TEST_F(lease_test, expired_lease_returns_to_the_front_of_its_priority) {
    const std::string first = enqueue("q", "1");
    const std::string second = enqueue("q", "2");
    lease_one("q", 1000);
    advance_ms(1000);
    EXPECT_EQ(lease_ids("q", 2), (std::vector<std::string>{first, second}));
}

TEST_F(lease_test, ack_after_lease_lost_is_rejected) {
    const std::string id = enqueue("q", "x");
    const std::string stale = lease_one("q", 1000);
    advance_ms(1500);
    EXPECT_EQ(b.ack(stale, "late", now), op_status::lease_lost);
    EXPECT_EQ(state_of(id), task_state::queued);
    const std::string fresh = lease_one("q");
    EXPECT_NE(fresh, stale);
    EXPECT_EQ(b.ack(stale, "late", now), op_status::lease_lost);
    EXPECT_EQ(b.fail(stale, "e", fail_mode::policy, 0, now), fail_outcome::lease_lost);
    EXPECT_EQ(b.release(stale, 0, now), op_status::lease_lost);
    EXPECT_EQ(b.extend(stale, 1000, now), op_status::lease_lost);
    EXPECT_EQ(b.ack(fresh, "ok", now), op_status::ok);
    EXPECT_EQ(b.ack(fresh, "twice", now), op_status::lease_lost);
    EXPECT_EQ(b.task(id, now)->result, "ok");
}

TEST_F(lease_test, malformed_tokens_are_lease_lost) {
    enqueue_id("q", "t");
    lease_one("q");
    for (std::string_view token :
         {"", "t", "t#", "t#x", "t#0", "t#1x", "t#99999999999", "#1", "u#1", "t#-1"}) {
        EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::lease_lost) << token;
    }
    EXPECT_EQ(b.ack("t#1", std::nullopt, now), op_status::ok);
}

TEST_F(lease_test, ack_stores_result_and_retains_it) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.ack(lease_one("q"), "42", now), op_status::ok);
    auto r = b.result(id, now);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->state, task_state::succeeded);
    EXPECT_EQ(r->result, "42");
    EXPECT_FALSE(r->error.has_value());
}

TEST_F(lease_test, ack_without_result_has_an_empty_result) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.ack(lease_one("q"), std::nullopt, now), op_status::ok);
    EXPECT_EQ(b.result(id, now)->result, "");
}

TEST_F(lease_test, extend_moves_the_deadline_from_now) {
    const std::string id = enqueue("q", "x");
    const std::string token = lease_one("q", 1000);
    advance_ms(900);
    EXPECT_EQ(b.extend(token, 1000, now), op_status::ok);
    advance_ms(999);
    EXPECT_EQ(state_of(id), task_state::leased);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 1000);
    advance_ms(1);
    EXPECT_EQ(state_of(id), task_state::queued);
    EXPECT_EQ(b.extend(token, 1000, now), op_status::lease_lost);
}

TEST_F(lease_test, extend_rejects_non_positive_durations) {
    enqueue("q", "x");
    const std::string token = lease_one("q");
    EXPECT_EQ(b.extend(token, 0, now), op_status::invalid);
    EXPECT_EQ(b.extend(token, -5, now), op_status::invalid);
}

TEST_F(lease_test, release_gives_the_attempt_back) {
    const std::string id = enqueue("q", "x");
    const std::string token = lease_one("q");
    EXPECT_EQ(attempt_of(id), 1);
    EXPECT_EQ(b.release(token, 0, now), op_status::ok);
    EXPECT_EQ(state_of(id), task_state::queued);
    EXPECT_EQ(attempt_of(id), 0);
    auto again = lease({"q"});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].attempt, 1);
    EXPECT_EQ(again[0].lease, id + "#2");
    EXPECT_EQ(b.stats().tasks_failed, 0u);
    EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::lease_lost);
}

TEST_F(lease_test, release_goes_to_the_back_of_the_queue) {
    const std::string first = enqueue("q", "1");
    const std::string second = enqueue("q", "2");
    b.release(lease_one("q"), 0, now);
    EXPECT_EQ(lease_ids("q", 2), (std::vector<std::string>{second, first}));
}

TEST_F(lease_test, release_with_delay_waits_without_a_lease) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.release(lease_one("q"), 5000, now), op_status::ok);
    EXPECT_EQ(state_of(id), task_state::delayed);
    EXPECT_TRUE(lease({"q"}).empty());
    advance_ms(4999);
    EXPECT_TRUE(lease({"q"}).empty());
    advance_ms(1);
    EXPECT_EQ(lease_ids("q", 1), std::vector<std::string>{id});
}

TEST_F(lease_test, repeated_lease_expiry_dead_letters_the_task) {
    enqueue_options opts;
    opts.retries = 2;
    const std::string id = enqueue("q", "poison", opts);
    for (int attempt = 1; attempt <= 3; ++attempt) {
        auto got = lease({"q"}, 1, 100);
        ASSERT_EQ(got.size(), 1u) << attempt;
        EXPECT_EQ(got[0].attempt, attempt);
        advance_ms(100);
    }
    EXPECT_EQ(state_of(id), task_state::dead);
    EXPECT_EQ(b.task(id, now)->error, "lease expired");
    EXPECT_TRUE(lease({"q"}).empty());
    EXPECT_EQ(b.dead_ids("q", 10, now), std::vector<std::string>{id});
    const stats_snapshot s = b.stats();
    EXPECT_EQ(s.tasks_expired, 3u);
    EXPECT_EQ(s.tasks_failed, 3u);
    EXPECT_EQ(s.tasks_dead, 1u);
}

TEST_F(lease_test, wall_clock_jump_expires_nothing) {
    const std::string id = enqueue("q", "x");
    const std::string token = lease_one("q", 10000);
    enqueue_options later;
    later.delay_ms = 10000;
    const std::string delayed = enqueue("q", "y", later);
    now.wall_ms += 86'400'000;  // a day forward
    EXPECT_EQ(state_of(id), task_state::leased);
    EXPECT_EQ(state_of(delayed), task_state::delayed);
    now.wall_ms -= 2LL * 86'400'000;  // and two days back
    now.mono_us += 1000;
    EXPECT_EQ(state_of(id), task_state::leased);
    EXPECT_EQ(state_of(delayed), task_state::delayed);
    EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::ok);
    EXPECT_EQ(b.stats().tasks_expired, 0u);
}

TEST_F(lease_test, delay_longer_than_the_lease_causes_no_redelivery) {
    enqueue_options opts;
    opts.delay_ms = 120000;  // four default leases
    const std::string id = enqueue("q", "eta", opts);
    for (int i = 0; i < 12; ++i) {
        advance_ms(9999);
        EXPECT_TRUE(lease({"q"}).empty());
    }
    advance_ms(12);
    auto got = lease({"q"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].attempt, 1);
    EXPECT_EQ(b.stats().tasks_leased, 1u);
    EXPECT_EQ(b.stats().tasks_expired, 0u);
}

TEST_F(lease_test, lease_takes_from_queues_in_listed_order) {
    const std::string a1 = enqueue("a", "1");
    const std::string b1 = enqueue("b", "1");
    const std::string b2 = enqueue("b", "2");
    auto got = lease({"b", "a"}, 5);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].id, b1);
    EXPECT_EQ(got[1].id, b2);
    EXPECT_EQ(got[2].id, a1);
}

TEST_F(lease_test, next_deadline_tracks_the_earliest_lease) {
    EXPECT_FALSE(b.next_deadline().has_value());
    enqueue("q", "x");
    enqueue("q", "y");
    lease_one("q", 5000);
    lease_one("q", 2000);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 2'000'000);
}

}  // namespace
}  // namespace conveyor::core::testing

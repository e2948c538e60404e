// FAIL, backoff, retry limits, dead letters and REQUEUE.
#include "conveyor/core/backoff.hpp"
#include "core_fixture.hpp"

#include <set>

namespace conveyor::core::testing {
namespace {

using retry_test = core_test;

TEST(backoff, stays_within_half_and_full_exponential_delay) {
    for (int attempt = 1; attempt <= 8; ++attempt) {
        const std::int64_t full = std::int64_t{1000} << (attempt - 1);
        for (int n = 0; n < 200; ++n) {
            const std::string id = "task-" + std::to_string(n);
            const std::int64_t d = backoff_delay_ms(1000, 1'000'000, attempt, 7, id);
            EXPECT_GE(d, full / 2) << attempt << " " << id;
            EXPECT_LE(d, full) << attempt << " " << id;
        }
    }
}

TEST(backoff, is_capped) {
    for (int attempt : {10, 20, 62, 63, 64, 1000, 2147483647}) {
        const std::int64_t d = backoff_delay_ms(1000, 60000, attempt, 1, "x");
        EXPECT_GE(d, 30000) << attempt;
        EXPECT_LE(d, 60000) << attempt;
    }
    EXPECT_LE(backoff_delay_ms(INT64_MAX / 2, INT64_MAX, 40, 1, "x"), INT64_MAX);
}

TEST(backoff, is_deterministic_in_seed_id_and_attempt) {
    EXPECT_EQ(backoff_delay_ms(1000, 600000, 3, 42, "a"),
              backoff_delay_ms(1000, 600000, 3, 42, "a"));
    // The jitter spreads: across ids (and seeds) the values are not all the same.
    std::set<std::int64_t> by_id;
    std::set<std::int64_t> by_seed;
    for (int n = 0; n < 50; ++n) {
        by_id.insert(backoff_delay_ms(1000, 600000, 3, 42, "id" + std::to_string(n)));
        by_seed.insert(backoff_delay_ms(1000, 600000, 3, std::uint64_t(n), "a"));
    }
    EXPECT_GT(by_id.size(), 25u);
    EXPECT_GT(by_seed.size(), 25u);
}

TEST(backoff, zero_or_negative_base_means_no_delay) {
    EXPECT_EQ(backoff_delay_ms(0, 1000, 3, 1, "x"), 0);
    EXPECT_EQ(backoff_delay_ms(-5, 1000, 3, 1, "x"), 0);
    EXPECT_EQ(backoff_delay_ms(1000, 0, 3, 1, "x"), 0);
}

TEST_F(retry_test, fail_retries_after_the_backoff_delay) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.fail(lease_one("q"), "boom", fail_mode::policy, 0, now), fail_outcome::retry);
    auto v = b.task(id, now);
    EXPECT_EQ(v->state, task_state::delayed);
    EXPECT_EQ(v->error, "boom");
    const std::int64_t expect_ms = backoff_delay_ms(1000, 600000, 1, 42, id);
    EXPECT_EQ(b.next_deadline(), now.mono_us + expect_ms * 1000);
    advance_ms(expect_ms - 1);
    EXPECT_TRUE(lease({"q"}).empty());
    advance_ms(1);
    auto got = lease({"q"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].attempt, 2);
}

TEST_F(retry_test, backoff_schedule_doubles_per_attempt_up_to_the_cap) {
    enqueue_options opts;
    opts.retries = 6;
    opts.backoff_base_ms = 100;
    opts.backoff_max_ms = 1000;
    const std::string id = enqueue("q", "x", opts);
    const std::int64_t full[] = {100, 200, 400, 800, 1000, 1000};
    for (int attempt = 1; attempt <= 6; ++attempt) {
        EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::policy, 0, now), fail_outcome::retry);
        const std::int64_t wait_us = *b.next_deadline() - now.mono_us;
        EXPECT_EQ(wait_us, backoff_delay_ms(100, 1000, attempt, 42, id) * 1000);
        EXPECT_GE(wait_us, full[attempt - 1] * 1000 / 2);
        EXPECT_LE(wait_us, full[attempt - 1] * 1000);
        now.mono_us += wait_us;
    }
    EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::policy, 0, now), fail_outcome::dead);
}

TEST_F(retry_test, dead_lettered_after_the_retry_limit) {
    enqueue_options opts;
    opts.retries = 1;
    opts.backoff_base_ms = 10;
    opts.backoff_max_ms = 10;
    const std::string id = enqueue("q", "x", opts);
    EXPECT_EQ(b.fail(lease_one("q"), "first", fail_mode::policy, 0, now), fail_outcome::retry);
    advance_ms(10);
    EXPECT_EQ(b.fail(lease_one("q"), "second", fail_mode::policy, 0, now), fail_outcome::dead);
    auto v = b.task(id, now);
    EXPECT_EQ(v->state, task_state::dead);
    EXPECT_EQ(v->error, "second");
    EXPECT_EQ(v->attempt, 2);
    EXPECT_EQ(b.result(id, now)->state, task_state::dead);
    const stats_snapshot s = b.stats();
    EXPECT_EQ(s.tasks_failed, 2u);
    EXPECT_EQ(s.tasks_dead, 1u);
    auto snap = b.queues_snapshot();
    ASSERT_EQ(snap.size(), 1u);
    EXPECT_EQ(snap[0].dead, 1u);
    EXPECT_EQ(snap[0].ready, 0u);
}

TEST_F(retry_test, zero_retries_means_one_delivery) {
    enqueue_options opts;
    opts.retries = 0;
    enqueue("q", "x", opts);
    EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::policy, 0, now), fail_outcome::dead);
}

TEST_F(retry_test, default_retries_come_from_config) {
    const std::string id = enqueue("q", "x");
    for (int attempt = 1; attempt <= 3; ++attempt) {
        EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::retry_after, 0, now), fail_outcome::retry);
    }
    EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::retry_after, 0, now), fail_outcome::dead);
    EXPECT_EQ(attempt_of(id), 4);
}

TEST_F(retry_test, retry_after_uses_the_given_delay_within_the_limit) {
    enqueue_options opts;
    opts.retries = 1;
    const std::string id = enqueue("q", "x", opts);
    EXPECT_EQ(b.fail(lease_one("q"), "later", fail_mode::retry_after, 2500, now),
              fail_outcome::retry);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 2'500'000);
    advance_ms(2500);
    EXPECT_EQ(b.fail(lease_one("q"), "later", fail_mode::retry_after, 2500, now),
              fail_outcome::dead);
    EXPECT_EQ(state_of(id), task_state::dead);
}

TEST_F(retry_test, retry_after_zero_requeues_at_the_back_at_once) {
    const std::string first = enqueue("q", "1");
    const std::string second = enqueue("q", "2");
    EXPECT_EQ(b.fail(lease_one("q"), "e", fail_mode::retry_after, 0, now), fail_outcome::retry);
    EXPECT_EQ(state_of(first), task_state::queued);
    EXPECT_EQ(lease_ids("q", 2), (std::vector<std::string>{second, first}));
}

TEST_F(retry_test, no_retry_dead_letters_at_once) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.fail(lease_one("q"), "fatal", fail_mode::no_retry, 0, now), fail_outcome::dead);
    EXPECT_EQ(state_of(id), task_state::dead);
    EXPECT_EQ(b.task(id, now)->error, "fatal");
}

TEST_F(retry_test, requeue_moves_dead_to_the_back_with_attempts_reset) {
    const std::string dead = enqueue("q", "x");
    EXPECT_EQ(b.fail(lease_one("q"), "fatal", fail_mode::no_retry, 0, now), fail_outcome::dead);
    const std::string other = enqueue("q", "y");
    EXPECT_FALSE(b.requeue(other, now));
    EXPECT_FALSE(b.requeue("nope", now));
    EXPECT_TRUE(b.requeue(dead, now));
    EXPECT_FALSE(b.requeue(dead, now));
    auto v = b.task(dead, now);
    EXPECT_EQ(v->state, task_state::queued);
    EXPECT_EQ(v->attempt, 0);
    EXPECT_EQ(v->error, "fatal");  // the last error stays visible until a new one replaces it
    EXPECT_TRUE(b.dead_ids("q", 10, now).empty());
    auto got = lease({"q"}, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].id, other);
    EXPECT_EQ(got[1].id, dead);
    EXPECT_EQ(got[1].attempt, 1);
}

TEST_F(retry_test, a_cancelled_task_shows_no_error_from_before) {
    const std::string id = enqueue("q", "x");
    EXPECT_EQ(b.fail(lease_one("q"), "fatal", fail_mode::no_retry, 0, now), fail_outcome::dead);
    EXPECT_TRUE(b.requeue(id, now));
    EXPECT_EQ(b.task(id, now)->error, "fatal");
    EXPECT_TRUE(b.cancel(id, now));
    auto v = b.task(id, now);
    EXPECT_EQ(v->state, task_state::cancelled);
    EXPECT_FALSE(v->error.has_value());  // (apply_one(rec_cancel): replay does the same)
}

TEST_F(retry_test, dead_ids_list_oldest_first_per_queue) {
    std::vector<std::string> ids;
    for (int i = 0; i < 4; ++i) ids.push_back(enqueue("q", "x"));
    enqueue("other", "y");
    // Kill them in reverse order of creation: the listing follows the order of death.
    auto got = lease({"q"}, 4);
    for (int i = 3; i >= 0; --i) b.fail(got[i].lease, "e", fail_mode::no_retry, 0, now);
    b.fail(lease_one("other"), "e", fail_mode::no_retry, 0, now);
    EXPECT_EQ(b.dead_ids("q", 0, now), (std::vector<std::string>{ids[3], ids[2], ids[1], ids[0]}));
    EXPECT_EQ(b.dead_ids("q", 2, now), (std::vector<std::string>{ids[3], ids[2]}));
    EXPECT_EQ(b.dead_ids("other", 10, now).size(), 1u);
    EXPECT_TRUE(b.dead_ids("none", 10, now).empty());
}

TEST_F(retry_test, dead_tasks_are_kept_indefinitely) {
    const std::string id = enqueue("q", "x");
    b.fail(lease_one("q"), "e", fail_mode::no_retry, 0, now);
    advance_ms(365LL * 86'400'000);
    EXPECT_EQ(state_of(id), task_state::dead);
    EXPECT_EQ(b.queue_names(now), std::vector<std::string>{"q"});
}

TEST_F(retry_test, failed_task_waiting_for_retry_is_not_leased) {
    enqueue_options opts;
    opts.backoff_base_ms = 60000;
    opts.backoff_max_ms = 60000;
    enqueue("q", "x", opts);
    b.fail(lease_one("q"), "e", fail_mode::policy, 0, now);
    advance_ms(29999);
    EXPECT_TRUE(lease({"q"}).empty());
    auto snap = b.queues_snapshot();
    ASSERT_EQ(snap.size(), 1u);
    EXPECT_EQ(snap[0].delayed, 1u);
}

}  // namespace
}  // namespace conveyor::core::testing

namespace conveyor::core::testing {
namespace {

TEST(enqueue_validation, backoff_needs_positive_base_not_above_max) {
    broker b(broker_config{});
    const instant now{1'000'000, 1'700'000'000'000};
    auto with_backoff = [&](std::int64_t base, std::int64_t max) {
        enqueue_options o;
        o.backoff_base_ms = base;
        o.backoff_max_ms = max;
        return b.enqueue("q", "x", o, now);
    };
    EXPECT_EQ(with_backoff(0, 10).status, op_status::invalid);
    EXPECT_EQ(with_backoff(20, 10).status, op_status::invalid);
    EXPECT_EQ(with_backoff(10, 10).status, op_status::ok);
    EXPECT_EQ(with_backoff(0, 10).error, "BACKOFF needs 0 < base-ms <= max-ms");
    EXPECT_EQ(b.ready_count("q", now), 1u);
}

}  // namespace
}  // namespace conveyor::core::testing

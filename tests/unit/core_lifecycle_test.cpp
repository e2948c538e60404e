// CANCEL in every state, TTL, result retention, RESULT and its waiters.
#include "core_fixture.hpp"

namespace conveyor::core::testing {
namespace {

using lifecycle_test = core_test;

TEST_F(lifecycle_test, cancel_queued_task_removes_it_from_the_queue) {
    const std::string first = enqueue("q", "1");
    const std::string second = enqueue("q", "2");
    const std::string third = enqueue("q", "3");
    EXPECT_TRUE(b.cancel(second, now));
    EXPECT_EQ(state_of(second), task_state::cancelled);
    EXPECT_EQ(b.ready_count("q", now), 2u);
    EXPECT_EQ(lease_ids("q", 5), (std::vector<std::string>{first, third}));
    EXPECT_EQ(b.stats().tasks_cancelled, 1u);
}

TEST_F(lifecycle_test, cancel_delayed_task_never_delivers_it) {
    const std::string id = enqueue("q", "x", with_delay(1000));
    EXPECT_TRUE(b.cancel(id, now));
    advance_ms(2000);
    EXPECT_TRUE(lease({"q"}).empty());
    EXPECT_EQ(state_of(id), task_state::cancelled);
}

TEST_F(lifecycle_test, cancel_leased_task_fences_its_lease) {
    const std::string id = enqueue("q", "x");
    const std::string token = lease_one("q", 1000);
    EXPECT_TRUE(b.cancel(id, now));
    EXPECT_EQ(state_of(id), task_state::cancelled);
    EXPECT_EQ(b.extend(token, 1000, now), op_status::cancelled);
    EXPECT_EQ(b.ack(token, "r", now), op_status::lease_lost);
    EXPECT_EQ(b.fail(token, "e", fail_mode::policy, 0, now), fail_outcome::lease_lost);
    EXPECT_EQ(b.release(token, 0, now), op_status::lease_lost);
    advance_ms(5000);  // its old lease deadline passes: nothing comes back
    EXPECT_TRUE(lease({"q"}).empty());
    EXPECT_EQ(b.stats().tasks_expired, 0u);
    EXPECT_EQ(b.extend(token, 1000, now), op_status::cancelled);
}

TEST_F(lifecycle_test, extend_with_an_older_token_of_a_cancelled_task_is_lease_lost) {
    const std::string id = enqueue("q", "x");
    const std::string old = lease_one("q");
    b.release(old, 0, now);
    b.cancel(id, now);  // cancelled while queued, not while leased
    EXPECT_EQ(b.extend(old, 1000, now), op_status::lease_lost);
}

TEST_F(lifecycle_test, cancel_of_ended_or_unknown_task_is_false) {
    const std::string done = enqueue("q", "x");
    b.ack(lease_one("q"), std::nullopt, now);
    const std::string dead = enqueue("q", "y");
    b.fail(lease_one("q"), "e", fail_mode::no_retry, 0, now);
    const std::string cancelled = enqueue("q", "z");
    EXPECT_TRUE(b.cancel(cancelled, now));
    EXPECT_FALSE(b.cancel(cancelled, now));
    EXPECT_FALSE(b.cancel(done, now));
    EXPECT_FALSE(b.cancel(dead, now));
    EXPECT_FALSE(b.cancel("unknown", now));
    EXPECT_EQ(b.stats().tasks_cancelled, 1u);
}

TEST_F(lifecycle_test, ttl_dead_letters_a_task_not_leased_in_time) {
    enqueue_options o;
    o.ttl_ms = 1000;
    const std::string id = enqueue("q", "x", o);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 1'000'000);
    advance_ms(1000);
    auto v = b.task(id, now);
    EXPECT_EQ(v->state, task_state::dead);
    EXPECT_EQ(v->error, "ttl expired");
    EXPECT_TRUE(lease({"q"}).empty());
    EXPECT_EQ(b.dead_ids("q", 10, now), std::vector<std::string>{id});
    EXPECT_EQ(b.stats().tasks_dead, 1u);
    EXPECT_EQ(b.stats().tasks_failed, 0u);
}

TEST_F(lifecycle_test, ttl_stops_counting_once_leased) {
    enqueue_options o;
    o.ttl_ms = 1000;
    const std::string id = enqueue("q", "x", o);
    advance_ms(500);
    const std::string token = lease_one("q", 60000);
    advance_ms(5000);
    EXPECT_EQ(state_of(id), task_state::leased);
    EXPECT_EQ(b.release(token, 0, now), op_status::ok);
    advance_ms(5000);
    EXPECT_EQ(state_of(id), task_state::queued);
}

TEST_F(lifecycle_test, ttl_applies_to_delayed_tasks) {
    enqueue_options o;
    o.ttl_ms = 1000;
    o.delay_ms = 5000;
    const std::string id = enqueue("q", "x", o);
    advance_ms(1000);
    EXPECT_EQ(state_of(id), task_state::dead);
    advance_ms(5000);
    EXPECT_TRUE(lease({"q"}).empty());
}

TEST_F(lifecycle_test, results_are_forgotten_after_retention) {
    const std::string done = enqueue("q", "x");
    b.ack(lease_one("q"), "r", now);
    const std::string cancelled = enqueue("q", "y");
    b.cancel(cancelled, now);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 60'000'000);
    advance_ms(59999);
    EXPECT_TRUE(b.result(done, now).has_value());
    EXPECT_TRUE(b.result(cancelled, now).has_value());
    advance_ms(1);
    EXPECT_FALSE(b.result(done, now).has_value());
    EXPECT_FALSE(b.task(cancelled, now).has_value());
    EXPECT_EQ(b.stats().tasks_live, 0u);
    EXPECT_FALSE(b.next_deadline().has_value());
    // A forgotten id may be enqueued again.
    EXPECT_TRUE(b.enqueue("q", "x", with_id(done), now).created);
}

TEST_F(lifecycle_test, ack_that_forgets_erases_the_task_at_once) {
    const std::string id = enqueue("q", std::string(1000, 'x'));
    EXPECT_FALSE(b.result(id, now, waiter_id{4}).has_value());
    const std::string token = lease_one("q");
    EXPECT_EQ(b.ack(token, std::nullopt, now, broker::after_ack::forget), op_status::ok);
    // Result waiters still hear that it succeeded; then nothing is left of it.
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].what, delivered::kind::result);
    EXPECT_EQ(events.got[0].state, task_state::succeeded);
    EXPECT_FALSE(b.task(id, now).has_value());
    EXPECT_EQ(b.stats().tasks_live, 0u);
    EXPECT_EQ(b.stats().tasks_succeeded, 1u);
    EXPECT_EQ(b.stats().payload_bytes, 0u);
    EXPECT_FALSE(b.next_deadline().has_value());  // no retention to expire
    EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::lease_lost);
    EXPECT_TRUE(b.enqueue("q", "again", with_id(id), now).created);
}

TEST_F(lifecycle_test, cancelled_token_is_lease_lost_once_forgotten) {
    const std::string id = enqueue("q", "x");
    const std::string token = lease_one("q");
    b.cancel(id, now);
    advance_ms(60000);
    EXPECT_EQ(b.extend(token, 1000, now), op_status::lease_lost);
}

TEST_F(lifecycle_test, result_is_nullopt_until_the_task_ends) {
    const std::string id = enqueue("q", "x");
    EXPECT_FALSE(b.result(id, now).has_value());
    const std::string token = lease_one("q");
    EXPECT_FALSE(b.result(id, now).has_value());
    b.ack(token, "r", now);
    EXPECT_EQ(b.result(id, now)->result, "r");
    EXPECT_FALSE(b.result("unknown", now).has_value());
}

TEST_F(lifecycle_test, result_waiter_is_woken_when_the_task_succeeds) {
    const std::string id = enqueue("q", "x");
    EXPECT_FALSE(b.result(id, now, waiter_id{7}).has_value());
    EXPECT_FALSE(b.result(id, now, waiter_id{8}).has_value());
    EXPECT_EQ(b.stats().waiters, 2u);
    b.ack(lease_one("q"), "r", now);
    ASSERT_EQ(events.got.size(), 2u);
    EXPECT_EQ(events.got[0].what, delivered::kind::result);
    EXPECT_EQ(events.got[0].waiter, 7u);
    EXPECT_EQ(events.got[0].ids, std::vector<std::string>{id});
    EXPECT_EQ(events.got[0].state, task_state::succeeded);
    EXPECT_EQ(events.got[1].waiter, 8u);
    EXPECT_EQ(b.stats().waiters, 0u);
}

TEST_F(lifecycle_test, result_waiter_is_woken_by_dead_and_cancel) {
    const std::string dies = enqueue("q", "x");
    const std::string cancelled = enqueue("q", "y");
    b.result(dies, now, waiter_id{1});
    b.result(cancelled, now, waiter_id{2});
    b.fail(lease_one("q"), "e", fail_mode::no_retry, 0, now);
    b.cancel(cancelled, now);
    ASSERT_EQ(events.got.size(), 2u);
    EXPECT_EQ(events.got[0].waiter, 1u);
    EXPECT_EQ(events.got[0].state, task_state::dead);
    EXPECT_EQ(events.got[1].waiter, 2u);
    EXPECT_EQ(events.got[1].state, task_state::cancelled);
}

TEST_F(lifecycle_test, result_waiter_is_woken_by_lease_expiry_dead_letter) {
    const std::string id = enqueue("q", "x", [] {
        enqueue_options o;
        o.retries = 0;
        return o;
    }());
    b.result(id, now, waiter_id{3});
    lease_one("q", 100);
    advance_ms(100);
    b.tick(now);
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].state, task_state::dead);
}

TEST_F(lifecycle_test, result_waiter_is_woken_when_a_pop_takes_the_task) {
    const std::string id = enqueue("q", "x");
    b.result(id, now, waiter_id{4});
    b.pop({{"q"}, list_end::front, 1}, now);
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].ids, std::vector<std::string>{id});
    EXPECT_EQ(events.got[0].state, task_state::succeeded);
    EXPECT_FALSE(b.task(id, now).has_value());
}

TEST_F(lifecycle_test, result_on_unknown_or_ended_task_registers_no_waiter) {
    b.result("unknown", now, waiter_id{1});
    const std::string id = enqueue("q", "x");
    b.ack(lease_one("q"), "r", now);
    EXPECT_TRUE(b.result(id, now, waiter_id{2}).has_value());
    EXPECT_EQ(b.stats().waiters, 0u);
}

TEST_F(lifecycle_test, cancelled_result_waiter_is_not_woken) {
    const std::string id = enqueue("q", "x");
    b.result(id, now, waiter_id{1});
    b.cancel_wait(1);
    b.cancel_wait(1);   // twice is harmless
    b.cancel_wait(99);  // unknown is harmless
    b.ack(lease_one("q"), "r", now);
    EXPECT_TRUE(events.got.empty());
}

TEST_F(lifecycle_test, purged_task_answers_its_result_waiters_as_not_finished) {
    const std::string id = enqueue("q", "x");
    b.result(id, now, waiter_id{1});
    EXPECT_EQ(b.purge("q", now), 1u);
    EXPECT_EQ(b.stats().waiters, 0u);
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].waiter, waiter_id{1});
    EXPECT_EQ(events.got[0].state, task_state::queued);  // never ran: RESULT answers nil
    EXPECT_FALSE(b.task(id, now).has_value());
}

TEST_F(lifecycle_test, deleted_queue_answers_result_waiters_of_its_tasks) {
    const std::string id = enqueue("q", "x");
    b.result(id, now, waiter_id{7});
    EXPECT_TRUE(b.delete_queue("q", now));
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].waiter, waiter_id{7});
    EXPECT_EQ(b.stats().waiters, 0u);
}

// What the disk-full reserve is computed from (broker_service::set_finishing_reserve): the
// live tasks and their ids' bytes, kept exact as tasks come and go.
TEST_F(lifecycle_test, live_task_count_and_id_bytes_follow_tasks_in_every_state) {
    EXPECT_EQ(b.live_tasks(), 0u);
    EXPECT_EQ(b.live_id_bytes(), 0u);
    enqueue_id("q", "a");
    enqueue_id("q", "bbbb", with_delay(1000));
    enqueue_id("other", "cc");
    enqueue_id("q", "a");  // an existing id: nothing added
    EXPECT_EQ(b.live_tasks(), 3u);
    EXPECT_EQ(b.live_id_bytes(), 7u);
    const std::string token = lease_one("q");
    EXPECT_EQ(b.ack(token, "done", now), op_status::ok);
    EXPECT_EQ(b.live_id_bytes(), 7u);  // kept for its result until retention ends
    advance_ms(test_config().result_ttl_ms + 1);
    b.tick(now);
    EXPECT_EQ(b.live_tasks(), 2u);
    EXPECT_EQ(b.live_id_bytes(), 6u);
    EXPECT_TRUE(b.delete_queue("q", now));
    EXPECT_EQ(b.live_tasks(), 1u);
    EXPECT_EQ(b.live_id_bytes(), 2u);
}

}  // namespace
}  // namespace conveyor::core::testing

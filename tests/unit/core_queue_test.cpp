// ENQUEUE options, ready order, Redis list ends, purge/delete, queue listing and stats.
#include "core_fixture.hpp"

#include <algorithm>
#include <charconv>

namespace conveyor::core::testing {
namespace {

using queue_test = core_test;

TEST_F(queue_test, ready_tasks_are_leased_fifo) {
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(enqueue("q", std::to_string(i)));
    EXPECT_EQ(lease_ids("q", 10), ids);
}

TEST_F(queue_test, higher_priority_first_fifo_within_a_priority) {
    const std::string low1 = enqueue("q", "l1", with_priority(0));
    const std::string high1 = enqueue("q", "h1", with_priority(9));
    const std::string mid = enqueue("q", "m", with_priority(5));
    const std::string high2 = enqueue("q", "h2", with_priority(9));
    const std::string low2 = enqueue("q", "l2", with_priority(0));
    EXPECT_EQ(lease_ids("q", 10), (std::vector<std::string>{high1, high2, mid, low1, low2}));
}

TEST_F(queue_test, invalid_options_are_refused_with_a_message) {
    auto refused = [&](const enqueue_options& o) {
        enqueue_result r = b.enqueue("q", "x", o, now);
        EXPECT_EQ(r.status, op_status::invalid);
        EXPECT_FALSE(r.error.empty());
        EXPECT_FALSE(r.created);
        return r.error;
    };
    enqueue_options o;
    o.priority = 10;
    EXPECT_NE(refused(o).find("PRIORITY"), std::string::npos);
    o.priority = -1;
    refused(o);
    o = {};
    o.delay_ms = -1;
    refused(o);
    o = {};
    o.retries = -1;
    refused(o);
    o = {};
    o.id = "";
    refused(o);
    o = {};
    o.id = std::string(70000, 'x');
    refused(o);
    o = {};
    o.ttl_ms = 0;
    refused(o);
    o = {};
    o.timeout_ms = -3;
    refused(o);
    EXPECT_EQ(b.stats().tasks_enqueued, 0u);
    EXPECT_TRUE(b.queue_names(now).empty());
}

TEST_F(queue_test, generated_ids_are_unique_short_and_increasing) {
    std::vector<std::string> ids;
    for (int i = 0; i < 100; ++i) ids.push_back(enqueue("q", "x"));
    for (std::size_t i = 1; i < ids.size(); ++i) {
        EXPECT_LT(std::stoull(ids[i - 1], nullptr, 16), std::stoull(ids[i], nullptr, 16));
    }
    EXPECT_LE(ids[0].size(), 16u);
    EXPECT_EQ(std::stoull(ids[0], nullptr, 16), std::uint64_t(now.wall_ms) * 1000);
}

TEST_F(queue_test, generated_ids_stay_unique_across_a_restart) {
    std::vector<record> log;
    b.set_record_sink([&](const record& r) { log.push_back(r); });
    std::string last;
    for (int i = 0; i < 3000; ++i) last = enqueue("q", "x");  // runs ahead of the wall clock
    broker restarted{test_config()};
    for (const record& r : log) restarted.replay(r);
    const std::string next = restarted.enqueue("q", "y", {}, now).id;
    EXPECT_GT(std::stoull(next, nullptr, 16), std::stoull(last, nullptr, 16));
}

TEST_F(queue_test, generated_ids_skip_past_ids_given_in_their_form) {
    const std::uint64_t next = std::uint64_t(now.wall_ms) * 1000 + 1;
    char given[20];
    auto [end, ec] = std::to_chars(given, given + sizeof given, next + 5, 16);
    enqueue_options o;
    o.id = std::string(given, end);
    b.enqueue("q", "given", o, now);
    for (int i = 0; i < 20; ++i) {
        const std::string id = enqueue("q", "x");
        EXPECT_GT(std::stoull(id, nullptr, 16), next + 5);
    }
    EXPECT_EQ(b.ready_count("q", now), 21u);
}

TEST_F(queue_test, generated_ids_stay_unique_after_a_given_id_wraps_the_counter) {
    // Live generated ids sit just above the clock floor, where a wrapped counter restarts.
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(enqueue("q", "x"));
    enqueue_options o;
    o.id = "ffffffffffffffff";  // the largest 64-bit value: the next generated id wraps
    b.enqueue("q", "given", o, now);
    for (int i = 0; i < 50; ++i) ids.push_back(enqueue("q", "x"));
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
    EXPECT_EQ(b.ready_count("q", now), 61u);  // every push made a task; none was swallowed
}

TEST_F(queue_test, existing_id_is_not_enqueued_twice) {
    enqueue_result first = b.enqueue("q", "x", with_id("order-7"), now);
    EXPECT_TRUE(first.created);
    EXPECT_EQ(first.id, "order-7");
    enqueue_result again = b.enqueue("other", "y", with_id("order-7"), now);
    EXPECT_EQ(again.status, op_status::ok);
    EXPECT_FALSE(again.created);
    EXPECT_EQ(again.id, "order-7");
    EXPECT_EQ(b.ready_count("q", now), 1u);
    EXPECT_EQ(b.ready_count("other", now), 0u);
    // Still idempotent while leased and after it ended, as long as the task is known.
    b.ack(lease_one("q"), "r", now);
    EXPECT_FALSE(b.enqueue("q", "x", with_id("order-7"), now).created);
    EXPECT_EQ(b.stats().tasks_enqueued, 1u);
}

TEST_F(queue_test, delayed_task_becomes_ready_when_due) {
    enqueue_options o;
    o.delay_ms = 1500;
    const std::string id = enqueue("q", "x", o);
    EXPECT_EQ(state_of(id), task_state::delayed);
    EXPECT_EQ(b.ready_count("q", now), 0u);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 1'500'000);
    advance_ms(1499);
    EXPECT_TRUE(lease({"q"}).empty());
    advance_ms(1);
    EXPECT_EQ(b.ready_count("q", now), 1u);
    EXPECT_EQ(state_of(id), task_state::queued);
}

TEST_F(queue_test, delayed_tasks_become_ready_in_due_order) {
    const std::string late = enqueue("q", "late", with_delay(300));
    const std::string early = enqueue("q", "early", with_delay(100));
    const std::string ready = enqueue("q", "now");
    const std::string mid = enqueue("q", "mid", with_delay(200));
    advance_ms(1000);
    EXPECT_EQ(lease_ids("q", 10), (std::vector<std::string>{ready, early, mid, late}));
}

TEST_F(queue_test, at_is_converted_to_monotonic_due_time) {
    enqueue_options o;
    o.at_unix_ms = now.wall_ms + 2000;
    const std::string id = enqueue("q", "x", o);
    EXPECT_EQ(b.next_deadline(), now.mono_us + 2'000'000);
    now.wall_ms += 5000;  // the wall clock jumps; the due time does not move
    EXPECT_EQ(state_of(id), task_state::delayed);
    now.mono_us += 2'000'000;
    EXPECT_EQ(state_of(id), task_state::queued);
}

TEST_F(queue_test, past_at_is_ready_now) {
    enqueue_options o;
    o.at_unix_ms = now.wall_ms - 60000;
    const std::string id = enqueue("q", "x", o);
    EXPECT_EQ(state_of(id), task_state::queued);
    EXPECT_EQ(lease_ids("q", 1), std::vector<std::string>{id});
}

TEST_F(queue_test, lpush_rpop_is_fifo) {
    for (const char* p : {"a", "b", "c"}) b.push("list", p, list_end::back, now);
    auto got = b.pop({{"list"}, list_end::front, 3}, now);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].second, "a");
    EXPECT_EQ(got[1].second, "b");
    EXPECT_EQ(got[2].second, "c");
    EXPECT_EQ(got[0].first, "list");
}

TEST_F(queue_test, rpush_lpop_is_fifo) {
    for (const char* p : {"a", "b", "c"}) b.push("list", p, list_end::front, now);
    auto got = b.pop({{"list"}, list_end::back, 3}, now);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0].second, "a");
    EXPECT_EQ(got[1].second, "b");
    EXPECT_EQ(got[2].second, "c");
}

TEST_F(queue_test, lpush_lpop_is_a_stack) {
    for (const char* p : {"a", "b", "c"}) b.push("list", p, list_end::back, now);
    auto got = b.pop({{"list"}, list_end::back, 2}, now);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].second, "c");
    EXPECT_EQ(got[1].second, "b");
}

TEST_F(queue_test, rpush_goes_to_the_front_and_is_leased_next) {
    const std::string queued = enqueue("q", "queued");
    EXPECT_EQ(b.push("q", "urgent", list_end::front, now), 2u);
    auto got = lease({"q"}, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].payload, "urgent");
    EXPECT_EQ(got[1].id, queued);
}

TEST_F(queue_test, push_returns_the_ready_count) {
    EXPECT_EQ(b.push("q", "a", list_end::back, now), 1u);
    EXPECT_EQ(b.push("q", "b", list_end::back, now), 2u);
    EXPECT_EQ(b.push("q", "c", list_end::front, now), 3u);
    EXPECT_EQ(b.ready_count("q", now), 3u);
}

TEST_F(queue_test, pop_forgets_the_task_and_counts_lease_and_success) {
    b.push("q", "a", list_end::back, now);
    auto got = b.pop({{"q"}, list_end::front, 1}, now);
    ASSERT_EQ(got.size(), 1u);
    const stats_snapshot s = b.stats();
    EXPECT_EQ(s.tasks_enqueued, 1u);
    EXPECT_EQ(s.tasks_leased, 1u);
    EXPECT_EQ(s.tasks_succeeded, 1u);
    EXPECT_EQ(s.tasks_live, 0u);
    EXPECT_EQ(s.payload_bytes, 0u);
    EXPECT_TRUE(b.queue_names(now).empty());
    EXPECT_TRUE(b.pop({{"q"}, list_end::front, 1}, now).empty());
}

TEST_F(queue_test, pop_takes_from_queues_in_listed_order) {
    b.push("a", "a1", list_end::back, now);
    b.push("b", "b1", list_end::back, now);
    auto got = b.pop({{"missing", "b", "a"}, list_end::front, 1}, now);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], (std::pair<std::string, std::string>{"b", "b1"}));
}

TEST_F(queue_test, purge_removes_ready_tasks_only) {
    enqueue("q", "a");
    enqueue("q", "b");
    const std::string leased = enqueue("q", "c", with_priority(9));
    const std::string token = lease_one("q");
    const std::string delayed = enqueue("q", "d", with_delay(1000));
    EXPECT_EQ(b.purge("q", now), 2u);
    EXPECT_EQ(b.purge("q", now), 0u);
    EXPECT_EQ(b.purge("none", now), 0u);
    EXPECT_EQ(b.ready_count("q", now), 0u);
    EXPECT_EQ(state_of(leased), task_state::leased);
    EXPECT_EQ(state_of(delayed), task_state::delayed);
    EXPECT_EQ(b.stats().tasks_live, 2u);
    EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::ok);
}

TEST_F(queue_test, delete_queue_removes_ready_delayed_and_dead_but_not_leased) {
    enqueue("q", "ready");
    const std::string dead = enqueue("q", "dead", with_priority(9));
    b.fail(lease_one("q"), "e", fail_mode::no_retry, 0, now);
    const std::string leased = enqueue("q", "leased", with_priority(9));
    const std::string token = lease_one("q");
    enqueue("q", "delayed", with_delay(1000));
    enqueue("other", "stays");
    EXPECT_TRUE(b.delete_queue("q", now));
    EXPECT_FALSE(b.task(dead, now).has_value());
    EXPECT_EQ(state_of(leased), task_state::leased);
    auto snap = b.queues_snapshot();
    ASSERT_EQ(snap.size(), 2u);
    EXPECT_EQ(snap[0].name, "other");
    EXPECT_EQ(snap[1].name, "q");
    EXPECT_EQ(snap[1].leased, 1u);
    EXPECT_EQ(snap[1].ready + snap[1].delayed + snap[1].dead, 0u);
    EXPECT_FALSE(b.delete_queue("q", now));  // only a leased task is left
    EXPECT_FALSE(b.delete_queue("none", now));
    EXPECT_EQ(b.ack(token, std::nullopt, now), op_status::ok);
    EXPECT_EQ(b.queue_names(now), std::vector<std::string>{"other"});
    advance_ms(1000);
    EXPECT_EQ(b.ready_count("q", now), 0u);
}

TEST_F(queue_test, queue_names_lists_queues_holding_any_task) {
    enqueue("ready", "x");
    enqueue("delayed", "x", with_delay(1000));
    enqueue("leased", "x");
    lease_one("leased");
    enqueue("dead", "x");
    b.fail(lease_one("dead"), "e", fail_mode::no_retry, 0, now);
    enqueue("done", "x");
    b.ack(lease_one("done"), std::nullopt, now);
    EXPECT_EQ(b.queue_names(now), (std::vector<std::string>{"dead", "delayed", "leased", "ready"}));
    EXPECT_EQ(b.stats().queues, 4u);
}

TEST_F(queue_test, stats_count_every_transition) {
    enqueue("q", "12345");
    enqueue("q", "123");
    enqueue("q", "1");
    b.push("q", "12", list_end::back, now);
    b.ack(lease_one("q"), std::nullopt, now);
    b.fail(lease_one("q"), "e", fail_mode::no_retry, 0, now);
    b.cancel(enqueue("q", "c"), now);
    stats_snapshot s = b.stats();
    EXPECT_EQ(s.tasks_enqueued, 5u);
    EXPECT_EQ(s.tasks_leased, 2u);
    EXPECT_EQ(s.tasks_succeeded, 1u);
    EXPECT_EQ(s.tasks_failed, 1u);
    EXPECT_EQ(s.tasks_dead, 1u);
    EXPECT_EQ(s.tasks_cancelled, 1u);
    EXPECT_EQ(s.tasks_expired, 0u);
    EXPECT_EQ(s.tasks_live, 5u);
    EXPECT_EQ(s.payload_bytes, 5u + 3 + 1 + 2 + 1);
    EXPECT_EQ(s.queues, 1u);
    EXPECT_EQ(s.waiters, 0u);
    auto snap = b.queues_snapshot();
    ASSERT_EQ(snap.size(), 1u);
    EXPECT_EQ(snap[0].ready, 2u);
    EXPECT_EQ(snap[0].dead, 1u);
}

TEST_F(queue_test, task_view_reports_name_priority_and_times) {
    enqueue_options o = with_priority(3);
    o.name = "send_email";
    const std::string id = enqueue("q", "x", o);
    const std::int64_t created = now.wall_ms;
    advance_ms(250);
    lease_one("q");
    auto v = b.task(id, now);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->id, id);
    EXPECT_EQ(v->queue, "q");
    EXPECT_EQ(v->name, "send_email");
    EXPECT_EQ(v->priority, 3);
    EXPECT_EQ(v->created_ms, created);
    EXPECT_EQ(v->updated_ms, created + 250);
    EXPECT_FALSE(b.task("unknown", now).has_value());
}

}  // namespace
}  // namespace conveyor::core::testing

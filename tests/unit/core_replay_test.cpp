// Event sourcing: the records a broker emits rebuild the same state in a fresh broker.
#include "core_fixture.hpp"

#include <set>
#include <tuple>

namespace conveyor::core::testing {
namespace {

// A task_view copied out of the broker (views die at the next call).
struct task_copy {
    std::string id, queue, name;
    task_state state;
    int attempt, priority;
    std::optional<std::string> result, error;
    std::int64_t created_ms, updated_ms;
    bool operator==(const task_copy&) const = default;
};

std::optional<task_copy> copy_of(broker& b, const std::string& id, instant now) {
    auto v = b.task(id, now);
    if (!v) return std::nullopt;
    task_copy c{std::string(v->id), std::string(v->queue), std::string(v->name), v->state,
                v->attempt,         v->priority,           std::nullopt,         std::nullopt,
                v->created_ms,      v->updated_ms};
    if (v->result) c.result = std::string(*v->result);
    if (v->error) c.error = std::string(*v->error);
    return c;
}

auto snapshot_tuple(const std::vector<queue_snapshot>& snaps) {
    std::vector<std::tuple<std::string, std::size_t, std::size_t, std::size_t, std::size_t>> out;
    for (const auto& s : snaps) out.emplace_back(s.name, s.ready, s.delayed, s.leased, s.dead);
    return out;
}

auto counters(const stats_snapshot& s) {
    return std::make_tuple(s.tasks_enqueued, s.tasks_leased, s.tasks_succeeded, s.tasks_failed,
                           s.tasks_dead, s.tasks_expired, s.tasks_cancelled, s.tasks_live, s.queues,
                           s.payload_bytes);
}

class replay_test : public core_test {
protected:
    std::vector<record> log;
    std::set<std::string> ids;

    void SetUp() override {
        b.set_record_sink([this](const record& r) {
            log.push_back(r);
            if (auto* e = std::get_if<rec_enqueue>(&r)) ids.insert(e->id);
        });
    }

    // Touches every kind of record, with delays due between records and a blocked waiter.
    void run_scenario() {
        enqueue_options retrying;
        retrying.retries = 2;
        retrying.backoff_base_ms = 200;
        retrying.backoff_max_ms = 1000;
        const std::string flaky = enqueue("jobs", "flaky", retrying);
        enqueue("jobs", "later", with_delay(150));
        enqueue("jobs", "urgent", with_priority(7));
        enqueue_options ttl;
        ttl.ttl_ms = 400;
        enqueue("unwatched", "stale", ttl);
        b.push("list", "p1", list_end::back, now);
        b.push("list", "p2", list_end::front, now);
        b.lease(lease_request{{"idle"}, 1, std::nullopt}, now, waiter_id{9});

        auto first = lease({"jobs"}, 2, 300);  // urgent, flaky
        ASSERT_EQ(first.size(), 2u);
        b.ack(first[0].lease, "done", now);
        b.fail(first[1].lease, "boom", fail_mode::policy, 0, now);
        advance_ms(160);  // "later" is due
        enqueue("jobs", "after-later");
        b.pop({{"list"}, list_end::front, 1}, now);
        b.extend(lease_one("jobs", 100), 500, now);  // "later": extended
        advance_ms(300);                             // flaky's retry is due, stale's TTL passes
        const std::string cancelled_in_lease = lease_one("jobs", 100);
        b.cancel(cancelled_in_lease.substr(0, cancelled_in_lease.rfind('#')), now);
        enqueue("idle", "wakes the waiter");
        advance_ms(1000);  // "later" lease expires
        auto rest = lease({"jobs"}, 10, 50);
        for (const leased_task& t : rest) b.release(t.lease, 100, now);
        advance_ms(100);
        std::string token = lease_one("jobs", 50);
        b.fail(token, "fatal", fail_mode::no_retry, 0, now);
        b.requeue(token.substr(0, token.rfind('#')), now);
        enqueue("doomed", "a");
        enqueue("doomed", "b", with_delay(10000));
        b.delete_queue("doomed", now);
        enqueue("purged", "a");
        b.purge("purged", now);
        advance_ms(59000);  // retention of the first results ends
        b.tick(now);
        (void)flaky;
    }

    void expect_same_state(broker& replayed) {
        for (const std::string& id : ids) {
            EXPECT_EQ(copy_of(b, id, now), copy_of(replayed, id, now)) << id;
        }
        EXPECT_EQ(snapshot_tuple(b.queues_snapshot()), snapshot_tuple(replayed.queues_snapshot()));
        EXPECT_EQ(counters(b.stats()), counters(replayed.stats()));
        EXPECT_EQ(b.next_deadline(), replayed.next_deadline());
        for (const char* q : {"jobs", "list", "idle", "unwatched"}) {
            EXPECT_EQ(b.dead_ids(q, 0, now), replayed.dead_ids(q, 0, now)) << q;
        }
    }
};

TEST_F(replay_test, replayed_records_rebuild_the_same_state) {
    run_scenario();
    ASSERT_FALSE(HasFailure());
    std::set<std::string_view> kinds;
    for (const record& r : log) kinds.insert(record_name(r));
    EXPECT_EQ(kinds.size(), std::variant_size_v<record>) << "scenario misses a record kind";

    broker replayed{test_config()};
    for (const record& r : log) replayed.replay(r);
    expect_same_state(replayed);
}

// AMQP's ack: an ack record, then a forget record at once; the replay forgets it too.
TEST_F(replay_test, ack_that_forgets_logs_ack_then_forget_and_replays_to_the_same_state) {
    const std::string kept = enqueue("q", "kept");
    const std::string gone = enqueue("q", "gone");
    ASSERT_EQ(b.ack(lease_one("q"), std::nullopt, now), op_status::ok);
    const std::string token = lease_one("q");
    const std::size_t before = log.size();
    ASSERT_EQ(b.ack(token, std::nullopt, now, broker::after_ack::forget), op_status::ok);
    ASSERT_EQ(log.size(), before + 2);
    EXPECT_EQ(record_name(log[before]), "ack");
    EXPECT_EQ(record_name(log[before + 1]), "forget");
    EXPECT_TRUE(b.result(kept, now).has_value());
    EXPECT_FALSE(b.task(gone, now).has_value());
    broker replayed{test_config()};
    for (const record& r : log) replayed.replay(r);
    expect_same_state(replayed);
    EXPECT_FALSE(replayed.task(gone, now).has_value());
}

TEST_F(replay_test, replayed_broker_continues_exactly_like_the_original) {
    run_scenario();
    broker replayed{test_config()};
    for (const record& r : log) replayed.replay(r);
    const std::size_t before = log.size();
    for (int step = 0; step < 5; ++step) {
        advance_ms(700);
        auto live = b.lease(lease_request{{"jobs", "list"}, 3, std::nullopt}, now);
        auto again = replayed.lease(lease_request{{"jobs", "list"}, 3, std::nullopt}, now);
        ASSERT_EQ(live.size(), again.size());
        for (std::size_t i = 0; i < live.size(); ++i) {
            EXPECT_EQ(live[i].lease, again[i].lease);
            EXPECT_EQ(live[i].attempt, again[i].attempt);
        }
    }
    EXPECT_GT(log.size(), before);
    expect_same_state(replayed);
}

TEST_F(replay_test, records_are_not_re_emitted_by_replay) {
    run_scenario();
    std::size_t emitted = 0;
    broker replayed{test_config()};
    replayed.set_record_sink([&](const record&) { ++emitted; });
    for (const record& r : log) replayed.replay(r);
    EXPECT_EQ(emitted, 0u);
}

TEST_F(replay_test, promotion_between_records_is_derived_from_time) {
    const std::string delayed = enqueue("q", "d", with_delay(100));
    advance_ms(150);
    const std::string fresh = enqueue("q", "f");  // the delayed task was promoted first
    broker replayed{test_config()};
    for (const record& r : log) replayed.replay(r);
    auto got = replayed.lease(lease_request{{"q"}, 2, std::nullopt}, now);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].id, delayed);
    EXPECT_EQ(got[1].id, fresh);
}

TEST_F(replay_test, lease_expiry_and_ttl_are_records) {
    enqueue_options ttl;
    ttl.ttl_ms = 10;
    enqueue("q", "y");
    enqueue("q", "x", ttl);
    lease_one("q", 10);
    advance_ms(20);
    b.tick(now);
    std::vector<std::string_view> names;
    for (const record& r : log) names.push_back(record_name(r));
    EXPECT_EQ(names, (std::vector<std::string_view>{"enqueue", "enqueue", "lease", "fail",
                                                    "ttl_expired"}));
    const auto& expiry = std::get<rec_fail>(log[3]);
    EXPECT_TRUE(expiry.expired);
    EXPECT_EQ(expiry.error, "lease expired");
    EXPECT_EQ(record_time(log[3]).mono_us, now.mono_us);
}

}  // namespace
}  // namespace conveyor::core::testing

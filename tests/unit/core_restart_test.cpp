// What the broker does after its log is replayed: session-bound leases (AMQP deliveries) are
// released at once, and queues_holding() finds queues by their tasks' front-end properties.
#include "core_fixture.hpp"

#include <algorithm>
#include <tuple>

namespace conveyor::core::testing {
namespace {

auto snapshot_tuple(const std::vector<queue_snapshot>& snaps) {
    std::vector<std::tuple<std::string, std::size_t, std::size_t, std::size_t, std::size_t>> out;
    for (const auto& s : snaps) out.emplace_back(s.name, s.ready, s.delayed, s.leased, s.dead);
    return out;
}

class restart_test : public core_test {
protected:
    std::vector<record> log;

    void SetUp() override {
        b.set_record_sink([this](const record& r) { log.push_back(r); });
    }

    std::vector<leased_task> lease_for_session(const std::string& queue, std::size_t count,
                                               std::int64_t lease_ms = 1'800'000) {
        lease_request req{{queue}, count, lease_ms};
        req.session_bound = true;
        return b.lease(req, now);
    }

    // A fresh broker rebuilt from everything logged so far, as a restart builds it.
    std::unique_ptr<broker> restarted(std::vector<record>* sink = nullptr) {
        auto out = std::make_unique<broker>(test_config());
        for (const record& r : log) out->replay(r);
        if (sink != nullptr) out->set_record_sink([sink](const record& r) { sink->push_back(r); });
        return out;
    }
};

TEST_F(restart_test, session_leases_are_logged_as_such_and_ordinary_ones_are_not) {
    enqueue("q", "a");
    enqueue("q", "b");
    lease_for_session("q", 1);
    lease_one("q");
    std::vector<bool> bound;
    for (const record& r : log) {
        if (const auto* l = std::get_if<rec_lease>(&r)) bound.push_back(l->session_bound);
    }
    EXPECT_EQ(bound, (std::vector<bool>{true, false}));
}

TEST_F(restart_test, session_leases_are_released_at_once_after_replay) {
    for (const char* p : {"1", "2", "3", "4", "5"}) enqueue("q", p);
    const auto got = lease_for_session("q", 2);
    ASSERT_EQ(got.size(), 2u);
    const std::vector<std::string> ids{std::string(got[0].id), std::string(got[1].id)};
    const std::vector<std::string> tokens{got[0].lease, got[1].lease};
    const std::string resp_lease = lease_one("q");  // a RESP worker may still ack it
    ASSERT_FALSE(resp_lease.empty());

    advance_ms(5000);  // downtime, well within the leases
    std::vector<record> emitted;
    auto again = restarted(&emitted);
    EXPECT_EQ(snapshot_tuple(again->queues_snapshot()),
              snapshot_tuple({{"q", 2, 0, 3, 0}}));  // what INFO showed before the fix
    EXPECT_EQ(again->release_session_leases(now), 2u);
    EXPECT_EQ(snapshot_tuple(again->queues_snapshot()), snapshot_tuple({{"q", 4, 0, 1, 0}}));

    // Each release is a logged record, so the next restart sees them ready too.
    std::vector<std::string> released;
    for (const record& r : emitted) {
        if (const auto* rel = std::get_if<rec_release>(&r)) {
            EXPECT_EQ(rel->due_us, 0);
            released.push_back(rel->id);
        }
    }
    std::sort(released.begin(), released.end());
    EXPECT_EQ(released, ids);

    // The dead delivery tags' tokens are fenced off; the RESP lease still counts.
    for (const auto& token : tokens) {
        EXPECT_EQ(again->ack(token, std::nullopt, now), op_status::lease_lost);
    }
    EXPECT_EQ(again->ack(resp_lease, std::nullopt, now), op_status::ok);
    // Given back, not failed: the attempt is returned, as a closed channel returns it.
    for (const auto& id : ids) {
        auto v = again->task(id, now);
        ASSERT_TRUE(v.has_value());
        EXPECT_EQ(v->state, task_state::queued);
        EXPECT_EQ(v->attempt, 0);
        EXPECT_FALSE(v->error.has_value());
    }
}

TEST_F(restart_test, released_leases_stay_released_at_the_next_restart) {
    enqueue("q", "a");
    lease_for_session("q", 1);
    std::vector<record> emitted;
    auto first = restarted(&emitted);
    ASSERT_EQ(first->release_session_leases(now), 1u);
    log.insert(log.end(), emitted.begin(), emitted.end());
    auto second = restarted();
    EXPECT_EQ(second->release_session_leases(now), 0u);
    EXPECT_EQ(snapshot_tuple(second->queues_snapshot()), snapshot_tuple({{"q", 1, 0, 0, 0}}));
}

TEST_F(restart_test, a_task_leased_again_over_resp_is_not_released) {
    enqueue("q", "a");
    const auto got = lease_for_session("q", 1);
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(b.release(got[0].lease, 0, now), op_status::ok);  // basic.nack requeue
    const std::string resp_lease = lease_one("q");
    ASSERT_FALSE(resp_lease.empty());
    auto again = restarted();
    EXPECT_EQ(again->release_session_leases(now), 0u);
    EXPECT_TRUE(again->lease_current(resp_lease));
}

TEST_F(restart_test, settled_deliveries_leave_nothing_to_release) {
    enqueue("q", "a");
    enqueue("q", "b");
    const auto got = lease_for_session("q", 2);
    ASSERT_EQ(got.size(), 2u);
    const std::string nack = got[1].lease;
    ASSERT_EQ(b.ack(got[0].lease, std::nullopt, now, broker::after_ack::forget), op_status::ok);
    ASSERT_EQ(b.fail(nack, "rejected", fail_mode::no_retry, 0, now), fail_outcome::dead);
    auto again = restarted();
    EXPECT_EQ(again->release_session_leases(now), 0u);
    EXPECT_EQ(snapshot_tuple(again->queues_snapshot()), snapshot_tuple({{"q", 0, 0, 0, 1}}));
}

// A lease whose deadline passed while the broker was down ends as any tick would end it (an
// attempt counted), before the release: the outcome does not depend on when the broker looks.
TEST_F(restart_test, a_session_lease_past_its_deadline_expires_rather_than_being_released) {
    const std::string id = enqueue("q", "a");
    lease_for_session("q", 1, 1000);
    advance_ms(2000);
    auto again = restarted();
    EXPECT_EQ(again->release_session_leases(now), 0u);
    auto v = again->task(id, now);
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->state, task_state::queued);
    EXPECT_EQ(v->attempt, 1);
    EXPECT_EQ(again->stats().tasks_expired, 1u);
}

TEST_F(restart_test, a_blocked_session_leaser_gets_session_bound_leases) {
    lease_request req{{"q"}, 1, 60000};
    req.session_bound = true;
    EXPECT_TRUE(b.lease(req, now, waiter_id{7}).empty());
    enqueue("q", "a");
    ASSERT_EQ(events.got.size(), 1u);
    auto again = restarted();
    EXPECT_EQ(again->release_session_leases(now), 1u);
}

TEST_F(restart_test, queues_holding_selects_queues_by_their_tasks_properties) {
    enqueue_options marked;
    marked.properties = "X-marked";
    enqueue_options plain;
    plain.properties = "plain";
    enqueue("b-marked", "1", marked);
    enqueue("b-marked", "2", marked);
    enqueue("a-marked", "1", plain);
    enqueue("a-marked", "2", marked);
    enqueue("plain", "1", plain);
    enqueue("none", "1");
    const std::string done = enqueue("done", "1", marked);
    const std::string token = lease_one("done");
    ASSERT_EQ(b.ack(token, std::nullopt, now), op_status::ok);  // kept for RESULT: not held
    auto is_marked = [](std::string_view p) { return p.starts_with("X"); };
    EXPECT_EQ(b.queues_holding(is_marked), (std::vector<std::string>{"a-marked", "b-marked"}));
    // A leased or dead task still holds its queue.
    lease_one("b-marked");
    lease_one("b-marked");
    EXPECT_EQ(b.queues_holding(is_marked), (std::vector<std::string>{"a-marked", "b-marked"}));
    EXPECT_EQ(b.queues_holding([](std::string_view p) { return p.empty(); }),
              (std::vector<std::string>{"none"}));
}

}  // namespace
}  // namespace conveyor::core::testing

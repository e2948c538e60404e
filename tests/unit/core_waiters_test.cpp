// Blocked LEASE and BLPOP/BRPOP clients: first come, first served, across queues.
#include "core_fixture.hpp"

namespace conveyor::core::testing {
namespace {

using waiters_test = core_test;

std::vector<leased_task> block_lease(broker& b, std::vector<std::string> queues, waiter_id w,
                                     instant now, std::size_t count = 1) {
    return b.lease(lease_request{std::move(queues), count, std::nullopt}, now, w);
}

TEST_F(waiters_test, blocked_lease_is_served_by_a_later_enqueue) {
    EXPECT_TRUE(block_lease(b, {"q"}, 1, now).empty());
    EXPECT_EQ(b.stats().waiters, 1u);
    const std::string id = enqueue("q", "x");
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].what, delivered::kind::leased);
    EXPECT_EQ(events.got[0].waiter, 1u);
    EXPECT_EQ(events.got[0].ids, std::vector<std::string>{id});
    EXPECT_EQ(state_of(id), task_state::leased);
    EXPECT_EQ(b.stats().waiters, 0u);
    EXPECT_EQ(b.ack(events.got[0].leases[0], std::nullopt, now), op_status::ok);
}

TEST_F(waiters_test, waiters_are_served_first_come_first_served_across_queues) {
    block_lease(b, {"a", "b"}, 1, now);
    block_lease(b, {"b"}, 2, now);
    block_lease(b, {"b", "a"}, 3, now);
    block_lease(b, {"a"}, 4, now);
    const std::string b1 = enqueue("b", "1");  // earliest waiter on b: 1
    const std::string b2 = enqueue("b", "2");  // then 2
    const std::string a1 = enqueue("a", "1");  // earliest left on a: 3
    const std::string a2 = enqueue("a", "2");  // then 4
    ASSERT_EQ(events.got.size(), 4u);
    std::vector<waiter_id> order;
    std::vector<std::string> ids;
    for (const delivered& d : events.got) {
        order.push_back(d.waiter);
        ids.push_back(d.ids.at(0));
    }
    EXPECT_EQ(order, (std::vector<waiter_id>{1, 2, 3, 4}));
    EXPECT_EQ(ids, (std::vector<std::string>{b1, b2, a1, a2}));
}

TEST_F(waiters_test, waiter_gets_up_to_count_tasks_ready_at_that_moment) {
    block_lease(b, {"q"}, 1, now, 3);
    b.push("q", "only", list_end::back, now);
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].ids.size(), 1u);
}

TEST_F(waiters_test, several_ready_tasks_go_to_the_earliest_waiter_first) {
    block_lease(b, {"q"}, 1, now, 2);
    block_lease(b, {"q"}, 2, now, 2);
    enqueue("q", "a", with_delay(100));
    enqueue("q", "b", with_delay(100));
    enqueue("q", "c", with_delay(100));
    advance_ms(100);
    b.tick(now);
    ASSERT_EQ(events.got.size(), 2u);
    EXPECT_EQ(events.got[0].waiter, 1u);
    EXPECT_EQ(events.got[0].ids.size(), 2u);
    EXPECT_EQ(events.got[1].waiter, 2u);
    EXPECT_EQ(events.got[1].ids.size(), 1u);
}

TEST_F(waiters_test, waiters_precede_a_caller_that_arrives_later) {
    block_lease(b, {"q"}, 1, now);
    enqueue("q", "x", with_delay(100));
    advance_ms(100);
    EXPECT_TRUE(lease({"q"}).empty());  // the waiter got it during this call's tick
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].waiter, 1u);
}

TEST_F(waiters_test, waiters_are_woken_by_release_expiry_retry_and_requeue) {
    const std::string id = enqueue("q", "x");
    std::string token = lease_one("q", 1000);
    block_lease(b, {"q"}, 1, now);
    b.release(token, 0, now);
    ASSERT_EQ(events.got.size(), 1u);
    token = events.got.back().leases[0];

    block_lease(b, {"q"}, 2, now);
    advance_ms(30000);  // expiry
    b.tick(now);
    ASSERT_EQ(events.got.size(), 2u);
    token = events.got.back().leases[0];

    block_lease(b, {"q"}, 3, now);
    b.fail(token, "e", fail_mode::retry_after, 50, now);
    EXPECT_EQ(events.got.size(), 2u);
    advance_ms(50);
    b.tick(now);
    ASSERT_EQ(events.got.size(), 3u);
    token = events.got.back().leases[0];

    b.fail(token, "e", fail_mode::no_retry, 0, now);
    block_lease(b, {"q"}, 4, now);
    EXPECT_TRUE(b.requeue(id, now));
    ASSERT_EQ(events.got.size(), 4u);
    EXPECT_EQ(events.got.back().waiter, 4u);
}

TEST_F(waiters_test, cancelled_waiter_is_skipped) {
    block_lease(b, {"q"}, 1, now);
    block_lease(b, {"q"}, 2, now);
    b.cancel_wait(1);
    enqueue("q", "x");
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].waiter, 2u);
    EXPECT_EQ(b.stats().waiters, 0u);
}

TEST_F(waiters_test, blocked_pop_gets_one_element_and_forgets_it) {
    EXPECT_TRUE(b.pop({{"list"}, list_end::front, 1}, now, waiter_id{5}).empty());
    EXPECT_EQ(b.push("list", "hello", list_end::back, now), 1u);
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].what, delivered::kind::popped);
    EXPECT_EQ(events.got[0].waiter, 5u);
    EXPECT_EQ(events.got[0].queue, "list");
    EXPECT_EQ(events.got[0].payload, "hello");
    EXPECT_EQ(b.ready_count("list", now), 0u);
    EXPECT_EQ(b.stats().tasks_live, 0u);
}

TEST_F(waiters_test, pop_and_lease_waiters_share_one_order) {
    b.pop({{"q"}, list_end::front, 1}, now, waiter_id{1});
    block_lease(b, {"q"}, 2, now);
    b.pop({{"q"}, list_end::back, 1}, now, waiter_id{3});
    b.push("q", "a", list_end::back, now);
    b.push("q", "b", list_end::back, now);
    b.push("q", "c", list_end::back, now);
    ASSERT_EQ(events.got.size(), 3u);
    EXPECT_EQ(events.got[0].what, delivered::kind::popped);
    EXPECT_EQ(events.got[0].payload, "a");
    EXPECT_EQ(events.got[1].what, delivered::kind::leased);
    EXPECT_EQ(events.got[2].what, delivered::kind::popped);
    EXPECT_EQ(events.got[2].payload, "c");
}

TEST_F(waiters_test, a_waiter_reusing_its_id_replaces_the_old_wait) {
    block_lease(b, {"a"}, 1, now);
    block_lease(b, {"b"}, 1, now);
    EXPECT_EQ(b.stats().waiters, 1u);
    enqueue("a", "x");
    EXPECT_TRUE(events.got.empty());
    enqueue("b", "y");
    ASSERT_EQ(events.got.size(), 1u);
}

TEST_F(waiters_test, waiters_alone_do_not_make_a_queue_visible) {
    block_lease(b, {"q"}, 1, now);
    EXPECT_TRUE(b.queue_names(now).empty());
    EXPECT_TRUE(b.queues_snapshot().empty());
    b.cancel_wait(1);
    EXPECT_EQ(b.stats().waiters, 0u);
}

TEST_F(waiters_test, no_waiter_without_block_as) {
    EXPECT_TRUE(lease({"q"}).empty());
    EXPECT_TRUE(b.pop({{"q"}, list_end::front, 1}, now).empty());
    EXPECT_EQ(b.stats().waiters, 0u);
}

// A session layer may call back into the broker from a callback: ack at once, drop a wait.
struct reentrant_events : recording_events {
    broker* b = nullptr;
    instant now;
    void on_leased(waiter_id w, std::span<const leased_task> tasks) override {
        recording_events::on_leased(w, tasks);
        for (const std::string& token : got.back().leases) b->ack(token, "fast", now);
    }
    void on_popped(waiter_id w, std::string_view queue, std::string_view payload) override {
        recording_events::on_popped(w, queue, payload);
        b->cancel_wait(77);
        b->enqueue("q", "from a callback", {}, now);
    }
};

class waiters_reentrancy : public ::testing::Test {
protected:
    reentrant_events events;
    broker b{test_config(), &events};
    instant now{1'000'000, 1'700'000'000'000};

    void SetUp() override {
        events.b = &b;
        events.now = now;
    }
    void advance_ms(std::int64_t ms) {
        now.mono_us += ms * 1000;
        events.now = now;
    }
};

TEST_F(waiters_reentrancy, a_popped_task_outlives_callbacks_that_call_the_broker) {
    b.enqueue(
        "list", "payload-y",
        [] {
            enqueue_options o = with_id("y");
            o.delay_ms = 100;
            return o;
        }(),
        now);
    EXPECT_FALSE(b.result("y", now, waiter_id{50}).has_value());
    b.pop(pop_request{{"list"}, list_end::front, 1}, now, waiter_id{3});
    b.lease(lease_request{{"q"}, 1, std::nullopt}, now, waiter_id{1});
    b.lease(lease_request{{"other"}, 1, std::nullopt}, now, waiter_id{77});
    advance_ms(100);
    b.tick(now);  // y is due: popped by 3, whose callback cancels 77 and enqueues on q
    ASSERT_EQ(events.got.size(), 3u);
    EXPECT_EQ(events.got[0].what, delivered::kind::popped);
    EXPECT_EQ(events.got[0].payload, "payload-y");
    EXPECT_EQ(events.got[1].what, delivered::kind::leased);
    EXPECT_EQ(events.got[1].waiter, 1u);
    EXPECT_EQ(events.got[2].what, delivered::kind::result);
    EXPECT_EQ(events.got[2].waiter, 50u);
    EXPECT_EQ(events.got[2].ids, std::vector<std::string>{"y"});
    EXPECT_EQ(events.got[2].state, task_state::succeeded);
    EXPECT_EQ(b.stats().waiters, 0u);
    EXPECT_EQ(b.stats().tasks_succeeded, 2u);  // the pop, and the ack from on_leased
    EXPECT_TRUE(b.queue_names(now).empty());   // a retained result holds no queue
}

TEST_F(waiters_reentrancy, result_waiter_sees_a_task_acked_from_a_lease_callback) {
    b.enqueue(
        "q", "x",
        [] {
            enqueue_options o = with_id("t");
            o.delay_ms = 100;
            return o;
        }(),
        now);
    b.result("t", now, waiter_id{50});
    b.lease(lease_request{{"q"}, 1, std::nullopt}, now, waiter_id{1});
    advance_ms(100);
    b.tick(now);
    ASSERT_EQ(events.got.size(), 2u);
    EXPECT_EQ(events.got[1].what, delivered::kind::result);
    EXPECT_EQ(events.got[1].state, task_state::succeeded);
    EXPECT_EQ(b.result("t", now)->result, "fast");
}

}  // namespace
}  // namespace conveyor::core::testing

// Opaque per-task properties (enqueue_options::properties, the AMQP message properties): handed
// back on every lease, kept across release, retry, expiry, requeue and replay, counted in
// payload_bytes; and holds_queue(), the lookup the AMQP layer uses to adopt core queues.
#include "core_fixture.hpp"

namespace conveyor::core::testing {
namespace {

class properties_test : public core_test {
protected:
    // Shaped like what the AMQP layer stores: flags, content-type, exchange, routing key.
    const std::string props = std::string("\x90\x00\x0atext/plain\x00\x02", 15) + "ex\x03key";

    enqueue_options with_properties(std::string p) {
        enqueue_options o;
        o.properties = std::move(p);
        return o;
    }
    // Leases one task of `queue`; returns {token, properties} ("" when none was ready).
    std::pair<std::string, std::string> lease_props(const std::string& queue) {
        auto got = lease({queue});
        if (got.empty()) return {};
        return {got[0].lease, std::string(got[0].properties)};
    }
};

TEST_F(properties_test, lease_returns_the_properties_given_at_enqueue) {
    enqueue("q", "with", with_properties(props));
    enqueue("q", "without");
    auto got = lease({"q"}, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].payload, "with");
    EXPECT_EQ(got[0].properties, props);
    EXPECT_EQ(got[1].payload, "without");
    EXPECT_TRUE(got[1].properties.empty());
}

TEST_F(properties_test, properties_sit_beside_timeout_and_ttl) {
    enqueue_options o = with_properties(props);
    o.timeout_ms = 2000;
    o.ttl_ms = 60000;
    enqueue("q", "x", o);
    auto got = lease({"q"});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].properties, props);
    EXPECT_EQ(got[0].timeout_ms, 2000);
    EXPECT_EQ(got[0].lease_ms, 2000 + 5000);
}

TEST_F(properties_test, blocked_lease_wake_up_carries_the_properties) {
    EXPECT_TRUE(b.lease(lease_request{{"q"}, 2, std::nullopt}, now, waiter_id{7}).empty());
    enqueue("q", "x", with_properties(props));
    ASSERT_EQ(events.got.size(), 1u);
    EXPECT_EQ(events.got[0].waiter, 7u);
    ASSERT_EQ(events.got[0].properties.size(), 1u);
    EXPECT_EQ(events.got[0].properties[0], props);
}

TEST_F(properties_test, release_keeps_the_properties) {
    enqueue("q", "x", with_properties(props));
    auto [token, p] = lease_props("q");
    EXPECT_EQ(b.release(token, 0, now), op_status::ok);
    std::tie(token, p) = lease_props("q");
    EXPECT_EQ(p, props);
    EXPECT_EQ(b.release(token, 500, now), op_status::ok);  // delayed release
    advance_ms(500);
    std::tie(token, p) = lease_props("q");
    EXPECT_EQ(p, props);
}

TEST_F(properties_test, fail_and_retry_keep_the_properties) {
    enqueue("q", "x", with_properties(props));
    auto [token, p] = lease_props("q");
    EXPECT_EQ(b.fail(token, "boom", fail_mode::policy, 0, now), fail_outcome::retry);
    advance_ms(600000);  // past any backoff
    std::tie(token, p) = lease_props("q");
    ASSERT_FALSE(token.empty());
    EXPECT_EQ(p, props);
    EXPECT_EQ(b.fail(token, "boom", fail_mode::retry_after, 0, now), fail_outcome::retry);
    std::tie(token, p) = lease_props("q");
    EXPECT_EQ(p, props);
}

TEST_F(properties_test, lease_expiry_redelivers_the_properties) {
    enqueue("q", "x", with_properties(props));
    auto got = lease({"q"}, 1, 1000);
    ASSERT_EQ(got.size(), 1u);
    advance_ms(1000);
    auto again = lease({"q"});
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].attempt, 2);
    EXPECT_EQ(again[0].properties, props);
}

TEST_F(properties_test, a_requeued_dead_letter_keeps_the_properties) {
    const std::string id = enqueue("q", "x", with_properties(props));
    auto [token, p] = lease_props("q");
    EXPECT_EQ(b.fail(token, "bad", fail_mode::no_retry, 0, now), fail_outcome::dead);
    EXPECT_TRUE(b.requeue(id, now));
    std::tie(token, p) = lease_props("q");
    EXPECT_EQ(p, props);
}

TEST_F(properties_test, payload_bytes_count_properties_until_the_task_is_gone) {
    enqueue("q", "12345", with_properties(props));
    EXPECT_EQ(b.stats().payload_bytes, 5 + props.size());
    const std::string token = lease_one("q");
    EXPECT_EQ(b.ack(token, "done", now), op_status::ok);
    EXPECT_EQ(b.stats().payload_bytes, 5 + props.size());  // kept for RESULT
    advance_ms(test_config().result_ttl_ms);
    b.tick(now);
    EXPECT_EQ(b.stats().payload_bytes, 0u);
    enqueue("q", "abc", with_properties(props));
    EXPECT_EQ(b.purge("q", now), 1u);
    EXPECT_EQ(b.stats().payload_bytes, 0u);
}

TEST_F(properties_test, replay_rebuilds_the_properties) {
    std::vector<record> log;
    b.set_record_sink([&](const record& r) { log.push_back(r); });
    enqueue("q", "a", with_properties(props));
    enqueue("q", "b", with_properties("p2"));
    enqueue("q", "c");
    auto [token, p] = lease_props("q");
    EXPECT_EQ(b.release(token, 0, now), op_status::ok);
    std::tie(token, p) = lease_props("q");
    EXPECT_EQ(b.fail(token, "boom", fail_mode::retry_after, 0, now), fail_outcome::retry);

    broker replayed{test_config()};
    for (const record& r : log) replayed.replay(r);
    EXPECT_EQ(replayed.stats().payload_bytes, b.stats().payload_bytes);
    auto got = replayed.lease(lease_request{{"q"}, 3, std::nullopt}, now);
    auto want = b.lease(lease_request{{"q"}, 3, std::nullopt}, now);
    ASSERT_EQ(got.size(), 3u);
    ASSERT_EQ(want.size(), 3u);
    for (std::size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].id, want[i].id) << i;
        EXPECT_EQ(got[i].properties, want[i].properties) << i;
    }
    // "a" went to the back on release, then "b" on its retry.
    EXPECT_EQ(got[0].payload, "c");
    EXPECT_TRUE(got[0].properties.empty());
    EXPECT_EQ(got[1].payload, "a");
    EXPECT_EQ(got[1].properties, props);
    EXPECT_EQ(got[2].payload, "b");
    EXPECT_EQ(got[2].properties, "p2");
}

TEST_F(properties_test, holds_queue_follows_the_tasks_of_a_queue) {
    EXPECT_FALSE(b.holds_queue("q"));
    b.lease(lease_request{{"q"}, 1, std::nullopt}, now, waiter_id{1});
    EXPECT_FALSE(b.holds_queue("q")) << "a waiter alone is no task";
    b.cancel_wait(1);

    enqueue("q", "x");
    EXPECT_TRUE(b.holds_queue("q"));
    EXPECT_FALSE(b.holds_queue("other"));
    std::string token = lease_one("q");
    EXPECT_TRUE(b.holds_queue("q")) << "leased";
    EXPECT_EQ(b.ack(token, "ok", now), op_status::ok);
    EXPECT_FALSE(b.holds_queue("q")) << "a succeeded task kept for RESULT does not count";

    enqueue_options once;
    once.retries = 0;
    enqueue("q", "y", once);
    token = lease_one("q");
    EXPECT_EQ(b.fail(token, "bad", fail_mode::policy, 0, now), fail_outcome::dead);
    EXPECT_TRUE(b.holds_queue("q")) << "dead letter";
    EXPECT_TRUE(b.delete_queue("q", now));
    EXPECT_FALSE(b.holds_queue("q"));

    enqueue("q", "a");
    enqueue("q", "b");
    EXPECT_EQ(b.purge("q", now), 2u);
    EXPECT_FALSE(b.holds_queue("q"));

    enqueue("q", "later", with_delay(1000));
    EXPECT_TRUE(b.holds_queue("q")) << "delayed";
    EXPECT_TRUE(b.delete_queue("q", now));
    EXPECT_FALSE(b.holds_queue("q"));

    enqueue("q", "busy");
    token = lease_one("q");
    EXPECT_FALSE(b.delete_queue("q", now)) << "DEL leaves leased tasks alone";
    EXPECT_TRUE(b.holds_queue("q"));
    EXPECT_EQ(b.release(token, 0, now), op_status::ok);
    EXPECT_EQ(b.purge("q", now), 1u);
    EXPECT_FALSE(b.holds_queue("q"));
}

TEST_F(properties_test, holds_queue_is_a_plain_lookup_without_records) {
    int records = 0;
    b.set_record_sink([&](const record&) { ++records; });
    enqueue_options ttl;
    ttl.ttl_ms = 1000;
    enqueue("q", "x", ttl);
    records = 0;
    advance_ms(5000);  // the TTL ran out, but nothing has ticked
    EXPECT_TRUE(b.holds_queue("q"));
    EXPECT_EQ(records, 0);
    b.tick(now);
    EXPECT_EQ(records, 1);  // ttl_expired: dead-lettered
    EXPECT_TRUE(b.holds_queue("q"));
}

// Not properties, but what the AMQP layer's basic.reject/nack mapping relies on: a release
// gives the attempt back (it never dead-letters), a no_retry FAIL dead-letters at once.
TEST_F(properties_test, releases_use_no_attempts_and_no_retry_dead_letters_at_once) {
    enqueue_options once;
    once.retries = 0;
    const std::string id = enqueue("q", "x", once);
    for (int i = 0; i < 10; ++i) {
        auto got = lease({"q"});
        ASSERT_EQ(got.size(), 1u) << i;
        EXPECT_EQ(got[0].attempt, 1) << i;
        EXPECT_EQ(b.release(got[0].lease, 0, now), op_status::ok);
    }
    EXPECT_EQ(state_of(id), task_state::queued);

    enqueue_options many;
    many.retries = 5;
    const std::string other = enqueue("r", "y", many);
    const std::string token = lease_one("r");
    EXPECT_EQ(b.fail(token, "no", fail_mode::no_retry, 0, now), fail_outcome::dead);
    EXPECT_EQ(state_of(other), task_state::dead);
}

}  // namespace
}  // namespace conveyor::core::testing

// What AMQP state a restart keeps: the envelope's exclusive mark (drop_exclusive_queues finds
// exclusive queues by it), and adopted queues, which only a durable binding writes to the
// topology file (a passive declare writes nothing).
#include <conveyor/amqp/amqp_session.hpp>
#include <conveyor/amqp/amqp_topology.hpp>

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace conveyor::server;

TEST(amqp_envelope, exclusive_mark_changes_only_the_version_byte) {
    std::string env = encode_envelope("ex", "key", std::string("\x80\x00\x01x", 4));
    const std::string plain = env;
    EXPECT_FALSE(envelope_marks_exclusive(env));
    mark_envelope_exclusive(env, true);
    EXPECT_TRUE(envelope_marks_exclusive(env));
    EXPECT_EQ(env.substr(1), plain.substr(1));
    const amqp_envelope marked = decode_envelope(env, "q");
    EXPECT_EQ(marked.exchange, "ex");
    EXPECT_EQ(marked.routing_key, "key");
    EXPECT_EQ(marked.raw_properties, std::string_view("\x80\x00\x01x", 4));
    mark_envelope_exclusive(env, false);
    EXPECT_EQ(env, plain);
    // A task enqueued over RESP has no envelope: never marked, delivered as published to "".
    EXPECT_FALSE(envelope_marks_exclusive(""));
    std::string none;
    mark_envelope_exclusive(none, true);
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(decode_envelope("", "q").routing_key, "q");
}

TEST(amqp_topology_adopted, using_a_core_queue_is_no_durable_change) {
    amqp_topology t;
    t.adopt_queue("resp-q", 0);
    EXPECT_FALSE(t.take_durable_change());
    ASSERT_TRUE(t.declare_queue("resp-q", true, false, false, false, {}, 1, 0));  // passive
    EXPECT_FALSE(t.take_durable_change());
    EXPECT_EQ(t.save().find("resp-q"), std::string::npos);
}

TEST(amqp_topology_adopted, a_durable_binding_saves_the_queue_and_unbinding_forgets_it) {
    amqp_topology t;
    ASSERT_FALSE(t.declare_exchange("dx", "direct", false, true, false, false, {}));
    ASSERT_FALSE(t.declare_exchange("tx", "direct", false, false, false, false, {}));
    t.adopt_queue("resp-q", 0);
    t.take_durable_change();
    ASSERT_FALSE(t.bind({"tx", "resp-q", false, "k", {}}));  // transient: not saved
    EXPECT_EQ(t.save().find("resp-q"), std::string::npos);
    ASSERT_FALSE(t.bind({"dx", "resp-q", false, "k", {}}));
    EXPECT_TRUE(t.take_durable_change());
    const std::string saved = t.save();
    EXPECT_NE(saved.find("\"resp-q\""), std::string::npos);
    amqp_topology u;  // the file loads: the binding finds its queue
    ASSERT_FALSE(u.load(saved, 0));
    ASSERT_NE(u.find_queue("resp-q"), nullptr);
    EXPECT_FALSE(u.find_queue("resp-q")->adopted);
    ASSERT_FALSE(t.unbind({"dx", "resp-q", false, "k", {}}));
    EXPECT_TRUE(t.take_durable_change());
    EXPECT_EQ(t.save().find("resp-q"), std::string::npos);
}

TEST(amqp_topology_adopted, a_declare_that_is_not_passive_declares_it) {
    amqp_topology t;
    t.adopt_queue("resp-q", 0);
    t.take_durable_change();
    ASSERT_TRUE(t.declare_queue("resp-q", false, true, false, false, {}, 1, 0));
    EXPECT_TRUE(t.take_durable_change());
    EXPECT_FALSE(t.find_queue("resp-q")->adopted);
    EXPECT_NE(t.save().find("resp-q"), std::string::npos);
}

}  // namespace

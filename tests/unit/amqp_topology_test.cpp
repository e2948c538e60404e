// amqp_topology: declarations, equivalence, bindings, routing, expiry and persistence, with the
// RabbitMQ 3.x reply codes and texts.
#include <conveyor/amqp/amqp_topology.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using namespace conveyor::server;
namespace amqp = conveyor::protocol::amqp;
using amqp::field_table;
using amqp::field_value;
using amqp::make_table;
using amqp::reply_code;
using names = std::vector<std::string>;

constexpr std::uint64_t conn_a = 1;
constexpr std::uint64_t conn_b = 2;

// Plain helpers: declare or fail the test.
void exchange(amqp_topology& t, const std::string& name, const std::string& type,
              bool durable = false, bool auto_delete = false) {
    auto e = t.declare_exchange(name, type, false, durable, auto_delete, false, {});
    ASSERT_FALSE(e) << e->text;
}
void queue(amqp_topology& t, const std::string& name, bool durable = false,
           const field_table& args = {}, bool exclusive = false, std::uint64_t conn = conn_a,
           std::int64_t now = 0) {
    auto r = t.declare_queue(name, false, durable, exclusive, false, args, conn, now);
    ASSERT_TRUE(r) << r.error().text;
}
amqp_binding qb(std::string source, std::string q, std::string key = "", field_table args = {}) {
    return amqp_binding{std::move(source), std::move(q), false, std::move(key), std::move(args)};
}
amqp_binding xb(std::string source, std::string x, std::string key = "", field_table args = {}) {
    return amqp_binding{std::move(source), std::move(x), true, std::move(key), std::move(args)};
}
void bind(amqp_topology& t, const amqp_binding& b) {
    auto e = t.bind(b);
    ASSERT_FALSE(e) << e->text;
}
names route(const amqp_topology& t, const std::string& x, const std::string& key,
            const field_table* headers = nullptr) {
    auto r = t.route(x, key, headers);
    EXPECT_TRUE(r) << r.error().text;
    return r ? *r : names{};
}

// ---- topic matching ---------------------------------------------------------------------------

TEST(topic_matches, literal_words) {
    EXPECT_TRUE(topic_matches("a.b.c", "a.b.c"));
    EXPECT_FALSE(topic_matches("a.b.c", "a.b"));
    EXPECT_FALSE(topic_matches("a.b", "a.b.c"));
    EXPECT_FALSE(topic_matches("a.b", "a.bb"));
    EXPECT_TRUE(topic_matches("", ""));
    EXPECT_FALSE(topic_matches("", "a"));
    EXPECT_FALSE(topic_matches("a", ""));
}

TEST(topic_matches, star_is_exactly_one_word) {
    EXPECT_TRUE(topic_matches("*", "a"));
    EXPECT_FALSE(topic_matches("*", ""));
    EXPECT_FALSE(topic_matches("*", "a.b"));
    EXPECT_TRUE(topic_matches("*.b", "a.b"));
    EXPECT_FALSE(topic_matches("*.b", "b"));
    EXPECT_TRUE(topic_matches("a.*.c", "a.x.c"));
    EXPECT_FALSE(topic_matches("a.*.c", "a.c"));
    EXPECT_TRUE(topic_matches("*.*", "a.b"));
}

TEST(topic_matches, hash_is_zero_or_more_words) {
    EXPECT_TRUE(topic_matches("#", ""));
    EXPECT_TRUE(topic_matches("#", "a"));
    EXPECT_TRUE(topic_matches("#", "a.b.c"));
    EXPECT_TRUE(topic_matches("a.#", "a"));
    EXPECT_TRUE(topic_matches("a.#", "a.b.c"));
    EXPECT_FALSE(topic_matches("a.#", "b.a"));
    EXPECT_TRUE(topic_matches("#.c", "c"));
    EXPECT_TRUE(topic_matches("#.c", "a.b.c"));
    EXPECT_FALSE(topic_matches("#.c", "a.c.d"));
    EXPECT_TRUE(topic_matches("a.#.c", "a.c"));
    EXPECT_TRUE(topic_matches("a.#.c", "a.x.y.c"));
    EXPECT_TRUE(topic_matches("#.#", ""));
    EXPECT_TRUE(topic_matches("#.#", "a.b"));
    EXPECT_TRUE(topic_matches("a.*.#", "a.b"));
    EXPECT_TRUE(topic_matches("a.*.#", "a.b.c.d"));
    EXPECT_FALSE(topic_matches("a.*.#", "a"));
    EXPECT_TRUE(topic_matches("#.a.#.b", "x.a.y.b"));
    EXPECT_FALSE(topic_matches("#.a.#.b", "x.a.y.b.c"));
    EXPECT_TRUE(topic_matches("#.b.#.b", "b.b"));
}

TEST(topic_matches, empty_words_are_words) {
    EXPECT_TRUE(topic_matches("a..b", "a..b"));
    EXPECT_TRUE(topic_matches("a.*.b", "a..b"));
    EXPECT_FALSE(topic_matches("a.b", "a..b"));
    EXPECT_TRUE(topic_matches("a.#.b", "a..b"));
    EXPECT_FALSE(topic_matches("*", "."));
    EXPECT_TRUE(topic_matches("*.*", "."));
    EXPECT_TRUE(topic_matches("a.*", "a."));
    EXPECT_FALSE(topic_matches("a", "a."));
    EXPECT_TRUE(topic_matches("#", "..."));
}

TEST(topic_matches, long_adversarial_input_is_fast) {
    // 85 '#' words against 127 words that never match the last pattern word.
    std::string pattern;
    for (int i = 0; i < 84; ++i) pattern += "#.";
    pattern += "z";
    std::string key;
    for (int i = 0; i < 127; ++i) key += (i ? ".a" : "a");
    ASSERT_LE(pattern.size(), 255u);
    ASSERT_LE(key.size(), 255u);
    EXPECT_FALSE(topic_matches(pattern, key));
    EXPECT_TRUE(topic_matches(pattern, key + ".z"));
    std::string stars;
    for (int i = 0; i < 127; ++i) stars += (i ? ".*" : "*");
    EXPECT_TRUE(topic_matches(stars, key));
}

// ---- queue arguments --------------------------------------------------------------------------

TEST(parse_queue_args, reads_any_integer_type) {
    auto r = parse_queue_args("q", make_table({{"x-max-priority", std::uint8_t{10}},
                                               {"x-message-ttl", std::int64_t{0}},
                                               {"x-expires", std::uint32_t{5000}},
                                               {"other", "kept"}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->max_priority, 10);
    EXPECT_EQ(r->message_ttl_ms, 0);
    EXPECT_EQ(r->expires_ms, 5000);
    for (field_value v : {field_value(std::int8_t{7}), field_value(std::int16_t{7}),
                          field_value(std::uint16_t{7}), field_value(std::int32_t{7})}) {
        auto r2 = parse_queue_args("q", make_table({{"x-expires", v}}));
        ASSERT_TRUE(r2);
        EXPECT_EQ(r2->expires_ms, 7);
    }
    field_value spec_int16(std::int16_t{9});
    spec_int16.tag = 'U';
    field_value big_l(std::int64_t{9});
    big_l.tag = 'L';
    EXPECT_EQ(parse_queue_args("q", make_table({{"x-message-ttl", spec_int16}}))->message_ttl_ms,
              9);
    EXPECT_EQ(parse_queue_args("q", make_table({{"x-message-ttl", big_l}}))->message_ttl_ms, 9);
}

TEST(parse_queue_args, refuses_bad_values_with_406) {
    auto check = [](const char* arg, field_value v, const std::string& problem) {
        auto r = parse_queue_args("q", make_table({{arg, std::move(v)}}));
        ASSERT_FALSE(r) << arg;
        EXPECT_EQ(r.error().code, reply_code::precondition_failed);
        EXPECT_FALSE(r.error().connection_error);
        EXPECT_EQ(r.error().text, "PRECONDITION_FAILED - invalid arg '" + std::string(arg) +
                                      "' for queue 'q' in vhost '/': " + problem);
    };
    check("x-expires", std::int32_t{0}, "{value_zero,0}");
    check("x-expires", std::int32_t{-5}, "{value_negative,-5}");
    check("x-message-ttl", std::int32_t{-1}, "{value_negative,-1}");
    check("x-max-priority", std::int32_t{256}, "{value_too_large,256,255}");
    check("x-max-priority", std::int32_t{-1}, "{value_negative,-1}");
    check("x-expires", "10", "{unacceptable_type,longstr}");
    check("x-message-ttl", 1.5, "{unacceptable_type,double}");
    check("x-max-priority", true, "{unacceptable_type,bool}");
    EXPECT_TRUE(parse_queue_args("q", make_table({{"x-max-priority", std::int32_t{255}}})));
    EXPECT_TRUE(parse_queue_args("q", make_table({{"x-max-priority", std::int32_t{0}}})));
}

// ---- exchanges --------------------------------------------------------------------------------

TEST(amqp_topology, predeclares_the_standard_exchanges) {
    amqp_topology t;
    EXPECT_EQ(t.exchange_count(), 6u);
    struct want {
        const char* name;
        exchange_kind kind;
    };
    for (auto w :
         {want{"", exchange_kind::direct}, want{"amq.direct", exchange_kind::direct},
          want{"amq.fanout", exchange_kind::fanout}, want{"amq.topic", exchange_kind::topic},
          want{"amq.headers", exchange_kind::headers}, want{"amq.match", exchange_kind::headers}}) {
        const amqp_exchange* x = t.find_exchange(w.name);
        ASSERT_NE(x, nullptr) << w.name;
        EXPECT_EQ(x->kind, w.kind);
        EXPECT_TRUE(x->durable);
        EXPECT_TRUE(x->builtin);
    }
    EXPECT_FALSE(t.take_durable_change());
}

TEST(amqp_topology, builtin_redeclare_equivalent_is_fine_else_406) {
    amqp_topology t;
    EXPECT_FALSE(t.declare_exchange("amq.topic", "topic", false, true, false, false, {}));
    EXPECT_FALSE(t.declare_exchange("amq.topic", "", true, false, false, false, {}));
    auto e = t.declare_exchange("amq.topic", "direct", false, true, false, false, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->text,
              "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.topic' "
              "in vhost '/': received 'direct' but current is 'topic'");
    // RabbitMQ refuses a non-passive declare of the default exchange; passive is fine.
    e = t.declare_exchange("", "direct", false, true, false, false, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::access_refused);
    EXPECT_EQ(e->text, "ACCESS_REFUSED - operation not permitted on the default exchange");
    EXPECT_FALSE(t.declare_exchange("", "", true, false, false, false, {}));
}

TEST(amqp_topology, reserved_exchange_prefix_is_403) {
    amqp_topology t;
    auto e = t.declare_exchange("amq.foo", "direct", false, true, false, false, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::access_refused);
    EXPECT_FALSE(e->connection_error);
    EXPECT_EQ(e->text, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'");
    EXPECT_EQ(t.find_exchange("amq.foo"), nullptr);
}

TEST(amqp_topology, unknown_exchange_type_is_503_connection_error) {
    amqp_topology t;
    auto e = t.declare_exchange("x", "x-delayed", false, false, false, false, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::command_invalid);
    EXPECT_TRUE(e->connection_error);
    EXPECT_EQ(e->text, "COMMAND_INVALID - invalid exchange type 'x-delayed'");
}

TEST(amqp_topology, passive_exchange_declare_of_missing_is_404) {
    amqp_topology t;
    auto e = t.declare_exchange("x", "direct", true, false, false, false, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::not_found);
    EXPECT_FALSE(e->connection_error);
    EXPECT_EQ(e->text, "NOT_FOUND - no exchange 'x' in vhost '/'");
}

TEST(amqp_topology, exchange_redeclare_checks_each_flag_in_order) {
    amqp_topology t;
    exchange(t, "x", "direct", true, false);
    EXPECT_FALSE(t.declare_exchange("x", "direct", false, true, false, false, {}));
    auto e = t.declare_exchange("x", "fanout", false, false, true, true, {});
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::precondition_failed);
    EXPECT_EQ(e->text,
              "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost "
              "'/': received 'fanout' but current is 'direct'");
    e = t.declare_exchange("x", "direct", false, false, true, true, {});
    EXPECT_EQ(e->text,
              "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x' in "
              "vhost '/': received 'false' but current is 'true'");
    e = t.declare_exchange("x", "direct", false, true, true, true, {});
    EXPECT_EQ(e->text,
              "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange 'x' in "
              "vhost '/': received 'true' but current is 'false'");
    e = t.declare_exchange("x", "direct", false, true, false, true, {});
    EXPECT_EQ(e->text,
              "PRECONDITION_FAILED - inequivalent arg 'internal' for exchange 'x' in "
              "vhost '/': received 'true' but current is 'false'");
}

TEST(amqp_topology, deleting_builtins_is_403_and_missing_is_fine) {
    amqp_topology t;
    auto e = t.delete_exchange("", false);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::access_refused);
    EXPECT_EQ(e->text, "ACCESS_REFUSED - operation not permitted on the default exchange");
    e = t.delete_exchange("amq.direct", false);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::access_refused);
    EXPECT_EQ(e->text,
              "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed");
    EXPECT_NE(t.find_exchange("amq.direct"), nullptr);
    EXPECT_FALSE(t.delete_exchange("nope", false));
    EXPECT_FALSE(t.delete_exchange("nope", true));
}

TEST(amqp_topology, delete_exchange_if_unused_and_bindings_both_ways) {
    amqp_topology t;
    exchange(t, "src", "fanout");
    exchange(t, "mid", "fanout");
    queue(t, "q");
    bind(t, xb("src", "mid"));
    bind(t, qb("mid", "q"));
    auto e = t.delete_exchange("mid", true);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::precondition_failed);
    EXPECT_EQ(e->text, "PRECONDITION_FAILED - exchange 'mid' in vhost '/' in use");
    EXPECT_EQ(route(t, "src", ""), names{"q"});
    EXPECT_FALSE(t.delete_exchange("mid", false));
    EXPECT_EQ(t.find_exchange("mid"), nullptr);
    EXPECT_TRUE(route(t, "src", "").empty());
    // Re-created, it has no bindings either way.
    exchange(t, "mid", "fanout");
    EXPECT_TRUE(route(t, "mid", "").empty());
    EXPECT_TRUE(route(t, "src", "").empty());
    // A destination-only exchange is unused: if_unused deletes it.
    bind(t, xb("src", "mid"));
    EXPECT_FALSE(t.delete_exchange("mid", true));
}

// ---- queues -----------------------------------------------------------------------------------

TEST(amqp_topology, declare_queue_creates_then_finds) {
    amqp_topology t;
    auto r = t.declare_queue("celery@host.pidbox", false, true, false, false, {}, conn_a, 100);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->created);
    EXPECT_EQ(r->queue->name, "celery@host.pidbox");
    EXPECT_EQ(r->queue->owner, 0u);
    EXPECT_EQ(r->queue->last_used_us, 100);
    EXPECT_TRUE(t.take_durable_change());
    r = t.declare_queue("celery@host.pidbox", false, true, false, false, {}, conn_b, 200);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->created);
    EXPECT_EQ(r->queue->last_used_us, 200);
    EXPECT_FALSE(t.take_durable_change());
    r = t.declare_queue("celery@host.pidbox", true, false, false, false, {}, conn_b, 300);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->queue->last_used_us, 300);
}

TEST(amqp_topology, passive_queue_declare_of_missing_is_404) {
    amqp_topology t;
    auto r = t.declare_queue("q", true, false, false, false, {}, conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::not_found);
    EXPECT_FALSE(r.error().connection_error);
    EXPECT_EQ(r.error().text, "NOT_FOUND - no queue 'q' in vhost '/'");
}

TEST(amqp_topology, reserved_queue_prefix_is_403_except_server_names) {
    amqp_topology t;
    auto r = t.declare_queue("amq.foo", false, false, false, false, {}, conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::access_refused);
    EXPECT_EQ(r.error().text,
              "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'");
    EXPECT_TRUE(t.declare_queue("amq.gen-abc", false, false, true, false, {}, conn_a, 0));
    // An existing amq.* queue (adopted from the core) may be redeclared.
    t.adopt_queue("amq.old", 0);
    EXPECT_TRUE(t.declare_queue("amq.old", false, true, false, false, {}, conn_a, 0));
}

TEST(amqp_topology, exclusive_queue_of_another_connection_is_405) {
    amqp_topology t;
    queue(t, "ex", false, {}, true, conn_a);
    const std::string text =
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in vhost '/'. It "
        "could be originally declared on another connection or the exclusive property value "
        "does not match that of the original declaration.";
    auto r = t.declare_queue("ex", true, false, false, false, {}, conn_b, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::resource_locked);
    EXPECT_FALSE(r.error().connection_error);
    EXPECT_EQ(r.error().text, text);
    r = t.declare_queue("ex", false, false, true, false, {}, conn_b, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::resource_locked);
    EXPECT_TRUE(t.declare_queue("ex", false, false, true, false, {}, conn_a, 0));
    EXPECT_TRUE(t.declare_queue("ex", true, false, false, false, {}, conn_a, 0));
    const amqp_queue* q = t.find_queue("ex");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->owner, conn_a);
    EXPECT_FALSE(t.check_access(*q, conn_a));
    ASSERT_TRUE(t.check_access(*q, conn_b));
    EXPECT_EQ(t.check_access(*q, conn_b)->text, text);
}

TEST(amqp_topology, queue_redeclare_flags_are_checked_in_order) {
    amqp_topology t;
    queue(t, "q", false);
    auto r = t.declare_queue("q", false, true, true, true, {}, conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::precondition_failed);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in "
              "vhost '/': received 'true' but current is 'false'");
    r = t.declare_queue("q", false, false, true, true, {}, conn_a, 0);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'exclusive' for queue 'q' "
              "in vhost '/': received 'true' but current is 'false'");
    r = t.declare_queue("q", false, false, false, true, {}, conn_a, 0);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue "
              "'q' in vhost '/': received 'true' but current is 'false'");
}

TEST(parse_queue_args, refuses_x_arguments_conveyor_does_not_implement) {
    auto refused = [](const char* name, field_value v) {
        auto r = parse_queue_args(
            "q", make_table({{"x-max-priority", std::uint8_t{3}}, {name, std::move(v)}}));
        if (r) return std::string("accepted");
        EXPECT_EQ(r.error().code, reply_code::precondition_failed);
        return r.error().text;
    };
    const std::string prefix = "PRECONDITION_FAILED - invalid arg ";
    EXPECT_EQ(refused("x-foo", "bar"),
              prefix + "'x-foo' for queue 'q' in vhost '/': not implemented by Conveyor");
    EXPECT_EQ(refused("x-queue-mode", "lazy"),
              prefix + "'x-queue-mode' for queue 'q' in vhost '/': not implemented by Conveyor");
    EXPECT_EQ(refused("x-queue-type", "quorum"),
              prefix +
                  "'x-queue-type' for queue 'q' in vhost '/': queue type 'quorum' is not "
                  "implemented by Conveyor (only 'classic')");
    EXPECT_EQ(refused("x-queue-type", "stream"),
              prefix +
                  "'x-queue-type' for queue 'q' in vhost '/': queue type 'stream' is not "
                  "implemented by Conveyor (only 'classic')");
    EXPECT_EQ(refused("x-queue-type", "nope"),
              prefix +
                  "'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type "
                  "'nope'\"");
    EXPECT_EQ(refused("x-queue-type", true),
              prefix + "'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,bool}");
    EXPECT_EQ(refused("x-queue-type", "classic"), "accepted");
    EXPECT_EQ(refused("priority", "anything"), "accepted");
}

TEST(parse_queue_args, max_length_and_overflow) {
    auto r = parse_queue_args("q", make_table({{"x-max-length", std::uint16_t{3}}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->max_length, 3);
    EXPECT_FALSE(r->reject_publish);
    r = parse_queue_args(
        "q", make_table({{"x-max-length", std::int8_t{0}}, {"x-overflow", "reject-publish"}}));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->max_length, 0);
    EXPECT_TRUE(r->reject_publish);
    r = parse_queue_args("q", make_table({{"x-overflow", "drop-head"}}));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->max_length);
    r = parse_queue_args("q", make_table({{"x-overflow", "reject-publish-dlx"}}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'q' in vhost '/': "
              "'reject-publish-dlx' is not implemented by Conveyor (drop-head, reject-publish)");
    r = parse_queue_args("q", make_table({{"x-max-length", std::int32_t{-1}}}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q' in vhost '/': "
              "{value_negative,-1}");
}

TEST(parse_queue_args, single_active_consumer_is_a_boolean) {
    auto r = parse_queue_args("q", make_table({{"x-single-active-consumer", true}}));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->single_active_consumer);
    r = parse_queue_args("q", field_table{});
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->single_active_consumer);
    r = parse_queue_args("q", make_table({{"x-single-active-consumer", std::int32_t{1}}}));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::precondition_failed);
}

TEST(amqp_topology, queue_redeclare_compares_parsed_x_arguments) {
    amqp_topology t;
    queue(t, "q", true, make_table({{"x-max-priority", std::uint8_t{10}}, {"foo", "bar"}}));
    // Same value under another integer tag; arguments without the x- prefix are ignored.
    EXPECT_TRUE(t.declare_queue("q", false, true, false, false,
                                make_table({{"x-max-priority", std::int32_t{10}}}), conn_a, 0));
    auto r = t.declare_queue(
        "q", false, true, false, false,
        make_table({{"x-max-priority", std::int32_t{10}}, {"x-expires", std::int32_t{10000}}}),
        conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue 'q' "
              "in vhost '/': received '10000' but current is 'none'");
    r = t.declare_queue("q", false, true, false, false, {}, conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue "
              "'q' in vhost '/': received 'none' but current is '10'");
    r = t.declare_queue(
        "q", false, true, false, false,
        make_table({{"x-max-priority", std::int32_t{10}}, {"x-message-ttl", std::int32_t{5}}}),
        conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().text,
              "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue "
              "'q' in vhost '/': received '5' but current is 'none'");
    // Invalid arguments are refused on redeclare too, and on creation nothing is created.
    r = t.declare_queue("q", false, true, false, false, make_table({{"x-expires", "x"}}), conn_a,
                        0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::precondition_failed);
    r = t.declare_queue("q2", false, true, false, false,
                        make_table({{"x-expires", std::int32_t{0}}}), conn_a, 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(t.find_queue("q2"), nullptr);
    EXPECT_EQ(t.find_queue("q")->arguments.find("foo")->value, field_value("bar"));
}

TEST(amqp_topology, adopt_queue_registers_a_plain_durable_queue_once) {
    amqp_topology t;
    amqp_queue& q = t.adopt_queue("core", 5);
    EXPECT_TRUE(q.durable);
    EXPECT_FALSE(q.exclusive);
    EXPECT_TRUE(q.arguments.empty());
    EXPECT_EQ(q.last_used_us, 5);
    q.consumers = 3;
    EXPECT_EQ(t.adopt_queue("core", 9).consumers, 3u);
    EXPECT_EQ(t.queue_count(), 1u);
}

TEST(amqp_topology, consumers_and_auto_delete) {
    amqp_topology t;
    ASSERT_TRUE(t.declare_queue("ad", false, false, false, true, {}, conn_a, 0));
    amqp_queue& q = *t.find_queue("ad");
    EXPECT_FALSE(q.had_consumer);
    t.consumer_added(q, 10);
    t.consumer_added(q, 20);
    EXPECT_EQ(q.consumers, 2u);
    EXPECT_TRUE(q.had_consumer);
    EXPECT_EQ(q.last_used_us, 20);
    EXPECT_FALSE(t.consumer_removed(q, 30));
    EXPECT_TRUE(t.consumer_removed(q, 40));
    EXPECT_EQ(q.last_used_us, 40);
    queue(t, "plain");
    amqp_queue& p = *t.find_queue("plain");
    t.consumer_added(p, 0);
    EXPECT_FALSE(t.consumer_removed(p, 0));
}

TEST(amqp_topology, queues_owned_by_a_connection) {
    amqp_topology t;
    queue(t, "b1", false, {}, true, conn_b);
    queue(t, "a2", false, {}, true, conn_a);
    queue(t, "a1", false, {}, true, conn_a);
    queue(t, "shared", false, {}, false, conn_a);
    EXPECT_EQ(t.queues_owned_by(conn_a), (names{"a1", "a2"}));
    EXPECT_EQ(t.queues_owned_by(conn_b), names{"b1"});
    EXPECT_TRUE(t.queues_owned_by(99).empty());
}

TEST(amqp_topology, x_expires_counts_from_last_use_without_consumers) {
    amqp_topology t;
    EXPECT_FALSE(t.next_expiry());
    queue(t, "e1", false, make_table({{"x-expires", std::int32_t{1000}}}), false, conn_a, 0);
    queue(t, "e2", false, make_table({{"x-expires", std::int32_t{500}}}), false, conn_a, 2'000'000);
    queue(t, "never", false, {}, false, conn_a, 0);
    EXPECT_EQ(t.next_expiry(), 1'000'000);
    EXPECT_TRUE(t.expired_queues(999'999).empty());
    EXPECT_EQ(t.expired_queues(1'000'000), names{"e1"});
    EXPECT_EQ(t.expired_queues(2'500'000), (names{"e1", "e2"}));
    // A consumer holds it; cancel restarts the clock.
    amqp_queue& q = *t.find_queue("e1");
    t.consumer_added(q, 100);
    EXPECT_EQ(t.next_expiry(), 2'500'000);
    EXPECT_EQ(t.expired_queues(5'000'000), names{"e2"});
    t.consumer_removed(q, 3'000'000);
    EXPECT_TRUE(t.expired_queues(3'999'999) == names{"e2"});
    EXPECT_EQ(t.expired_queues(4'000'000), (names{"e1", "e2"}));
    // A redeclare is a use.
    ASSERT_TRUE(t.declare_queue("e2", true, false, false, false, {}, conn_a, 4'000'000));
    EXPECT_EQ(t.expired_queues(4'000'000), names{"e1"});
}

// ---- bindings and routing ---------------------------------------------------------------------

TEST(amqp_topology, default_exchange_routes_by_queue_name_and_refuses_bindings) {
    amqp_topology t;
    queue(t, "q");
    EXPECT_EQ(route(t, "", "q"), names{"q"});
    EXPECT_TRUE(route(t, "", "missing").empty());
    for (auto e : {t.bind(qb("", "q", "q")), t.unbind(qb("", "q", "q")),
                   t.bind(xb("amq.direct", "")), t.bind(xb("", "amq.direct"))}) {
        ASSERT_TRUE(e);
        EXPECT_EQ(e->code, reply_code::access_refused);
        EXPECT_EQ(e->text, "ACCESS_REFUSED - operation not permitted on the default exchange");
    }
}

TEST(amqp_topology, route_to_missing_exchange_is_404) {
    amqp_topology t;
    auto r = t.route("nope", "k", nullptr);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, reply_code::not_found);
    EXPECT_FALSE(r.error().connection_error);
    EXPECT_EQ(r.error().text, "NOT_FOUND - no exchange 'nope' in vhost '/'");
}

TEST(amqp_topology, bind_with_missing_ends_is_404) {
    amqp_topology t;
    queue(t, "q");
    auto e = t.bind(qb("nox", "q"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::not_found);
    EXPECT_EQ(e->text, "NOT_FOUND - no exchange 'nox' in vhost '/'");
    e = t.bind(qb("amq.direct", "noq"));
    EXPECT_EQ(e->text, "NOT_FOUND - no queue 'noq' in vhost '/'");
    e = t.bind(xb("amq.direct", "nox"));
    EXPECT_EQ(e->text, "NOT_FOUND - no exchange 'nox' in vhost '/'");
    e = t.bind(qb("nox", "noq"));
    EXPECT_EQ(e->text,
              "NOT_FOUND - no exchange 'nox' in vhost '/' and no queue 'noq' in vhost '/'");
    e = t.unbind(qb("amq.direct", "noq"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::not_found);
    // Unbinding what is not bound is fine.
    EXPECT_FALSE(t.unbind(qb("amq.direct", "q", "k")));
}

TEST(amqp_topology, direct_routes_exact_keys_once_each_in_bind_order) {
    amqp_topology t;
    queue(t, "q1");
    queue(t, "q2");
    bind(t, qb("amq.direct", "q2", "k"));
    bind(t, qb("amq.direct", "q1", "k"));
    bind(t, qb("amq.direct", "q1", "k"));                                        // twice: no-op
    bind(t, qb("amq.direct", "q1", "k", make_table({{"a", std::int32_t{1}}})));  // distinct
    bind(t, qb("amq.direct", "q1", "other"));
    EXPECT_EQ(route(t, "amq.direct", "k"), (names{"q2", "q1"}));
    EXPECT_EQ(route(t, "amq.direct", "other"), names{"q1"});
    EXPECT_TRUE(route(t, "amq.direct", "K").empty());
    EXPECT_TRUE(route(t, "amq.direct", "").empty());
    EXPECT_FALSE(t.unbind(qb("amq.direct", "q1", "k")));
    EXPECT_EQ(route(t, "amq.direct", "k"), (names{"q2", "q1"}));  // the one with arguments
    EXPECT_FALSE(t.unbind(qb("amq.direct", "q1", "k", make_table({{"a", std::int32_t{1}}}))));
    EXPECT_EQ(route(t, "amq.direct", "k"), names{"q2"});
}

TEST(amqp_topology, fanout_routes_to_all_bound) {
    amqp_topology t;
    queue(t, "a");
    queue(t, "b");
    bind(t, qb("amq.fanout", "a", "x"));
    bind(t, qb("amq.fanout", "b", "y"));
    bind(t, qb("amq.fanout", "a", "z"));
    EXPECT_EQ(route(t, "amq.fanout", "anything"), (names{"a", "b"}));
}

TEST(amqp_topology, wide_fanout_deduplicates) {
    amqp_topology t;
    names all;
    for (int i = 0; i < 100; ++i) {
        std::string n = "q";
        n += std::to_string(i);
        queue(t, n);
        all.push_back(n);
        bind(t, qb("amq.fanout", n, "a"));
        bind(t, qb("amq.fanout", n, "b"));
    }
    EXPECT_EQ(route(t, "amq.fanout", ""), all);
}

TEST(amqp_topology, topic_routes_by_pattern) {
    amqp_topology t;
    queue(t, "all");
    queue(t, "stock");
    queue(t, "usd");
    bind(t, qb("amq.topic", "all", "#"));
    bind(t, qb("amq.topic", "stock", "stock.*"));
    bind(t, qb("amq.topic", "usd", "*.usd.#"));
    EXPECT_EQ(route(t, "amq.topic", "stock.usd"), (names{"all", "stock", "usd"}));
    EXPECT_EQ(route(t, "amq.topic", "stock"), names{"all"});
    EXPECT_EQ(route(t, "amq.topic", "x.usd.y.z"), (names{"all", "usd"}));
    EXPECT_EQ(route(t, "amq.topic", ""), names{"all"});
}

TEST(amqp_topology, headers_all_any_and_presence) {
    amqp_topology t;
    queue(t, "all");
    queue(t, "any");
    queue(t, "present");
    queue(t, "empty");
    bind(t, qb("amq.headers", "all", "",
               make_table({{"x-match", "all"}, {"format", "pdf"}, {"type", "report"}})));
    bind(t, qb("amq.headers", "any", "",
               make_table({{"x-match", "any"}, {"format", "pdf"}, {"type", "report"}})));
    bind(t, qb("amq.headers", "present", "",
               make_table({{"flag", amqp::void_value{}}, {"x-ignored", "zzz"}})));
    bind(t, qb("amq.headers", "empty", ""));  // x-match all over nothing: everything
    auto pdf_report = make_table({{"format", "pdf"}, {"type", "report"}});
    auto pdf_only = make_table({{"format", "pdf"}, {"type", "log"}});
    auto flagged = make_table({{"flag", std::int32_t{0}}});
    EXPECT_EQ(route(t, "amq.headers", "", &pdf_report), (names{"all", "any", "empty"}));
    EXPECT_EQ(route(t, "amq.headers", "", &pdf_only), (names{"any", "empty"}));
    EXPECT_EQ(route(t, "amq.match", "", &pdf_only), names{});
    EXPECT_EQ(route(t, "amq.headers", "", &flagged), (names{"present", "empty"}));
    EXPECT_EQ(route(t, "amq.headers", "", nullptr), names{"empty"});
}

TEST(amqp_topology, headers_compare_integers_by_value_and_x_args_only_with_x) {
    amqp_topology t;
    queue(t, "n");
    queue(t, "withx");
    bind(t, qb("amq.headers", "n", "", make_table({{"n", std::int8_t{5}}})));
    bind(t, qb("amq.headers", "withx", "", make_table({{"x-match", "all-with-x"}, {"x-k", "v"}})));
    auto h = make_table({{"n", std::int64_t{5}}, {"x-k", "v"}});
    EXPECT_EQ(route(t, "amq.headers", "", &h), (names{"n", "withx"}));
    auto h2 = make_table({{"n", "5"}});
    EXPECT_TRUE(route(t, "amq.headers", "", &h2).empty());
    auto e = t.bind(qb("amq.headers", "n", "", make_table({{"x-match", "most"}})));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->code, reply_code::precondition_failed);
}

TEST(amqp_topology, exchange_to_exchange_bindings_follow_recursively) {
    amqp_topology t;
    exchange(t, "in", "topic");
    exchange(t, "mid", "fanout");
    exchange(t, "leaf", "direct");
    queue(t, "q1");
    queue(t, "q2");
    bind(t, xb("in", "mid", "a.#"));
    bind(t, xb("mid", "leaf"));
    bind(t, qb("mid", "q1"));
    bind(t, qb("leaf", "q2", "a.b"));
    bind(t, qb("leaf", "q1", "a.b"));
    EXPECT_EQ(route(t, "in", "a.b"), (names{"q1", "q2"}));
    EXPECT_EQ(route(t, "in", "a.c"), names{"q1"});
    EXPECT_TRUE(route(t, "in", "b").empty());
    EXPECT_FALSE(t.unbind(xb("in", "mid", "a.#")));
    EXPECT_TRUE(route(t, "in", "a.b").empty());
}

TEST(amqp_topology, exchange_cycles_are_visited_once) {
    amqp_topology t;
    exchange(t, "x1", "fanout");
    exchange(t, "x2", "fanout");
    exchange(t, "x3", "fanout");
    queue(t, "q");
    bind(t, xb("x1", "x2"));
    bind(t, xb("x2", "x3"));
    bind(t, xb("x3", "x1"));
    bind(t, xb("x1", "x1"));
    bind(t, qb("x2", "q"));
    bind(t, qb("x3", "q"));
    EXPECT_EQ(route(t, "x1", ""), names{"q"});
    EXPECT_EQ(route(t, "x3", ""), names{"q"});
}

TEST(amqp_topology, unbind_deletes_auto_delete_exchange_left_without_bindings) {
    amqp_topology t;
    exchange(t, "ad", "direct", false, true);
    queue(t, "q");
    bind(t, qb("ad", "q", "a"));
    bind(t, qb("ad", "q", "b"));
    EXPECT_FALSE(t.unbind(qb("ad", "q", "a")));
    EXPECT_NE(t.find_exchange("ad"), nullptr);
    EXPECT_FALSE(t.unbind(qb("ad", "q", "zzz")));  // nothing removed: kept
    EXPECT_NE(t.find_exchange("ad"), nullptr);
    EXPECT_FALSE(t.unbind(qb("ad", "q", "b")));
    EXPECT_EQ(t.find_exchange("ad"), nullptr);
}

TEST(amqp_topology, remove_queue_drops_its_bindings_and_auto_delete_exchanges) {
    amqp_topology t;
    exchange(t, "ad", "fanout", false, true);
    exchange(t, "ad_parent", "fanout", false, true);
    exchange(t, "keep", "fanout");
    queue(t, "q");
    queue(t, "other");
    bind(t, xb("ad_parent", "ad"));
    bind(t, qb("ad", "q"));
    bind(t, qb("keep", "q"));
    bind(t, qb("keep", "other"));
    bind(t, qb("amq.direct", "q", "k"));
    t.remove_queue("q");
    EXPECT_EQ(t.find_queue("q"), nullptr);
    // ad lost its last binding, then ad_parent lost its only one (to ad): both gone.
    EXPECT_EQ(t.find_exchange("ad"), nullptr);
    EXPECT_EQ(t.find_exchange("ad_parent"), nullptr);
    EXPECT_EQ(route(t, "keep", ""), names{"other"});
    EXPECT_TRUE(route(t, "amq.direct", "k").empty());
    // A new queue of the same name starts unbound.
    queue(t, "q");
    EXPECT_EQ(route(t, "keep", ""), names{"other"});
    EXPECT_EQ(route(t, "", "q"), names{"q"});
    t.remove_queue("missing");
}

// ---- durable changes and persistence ----------------------------------------------------------

TEST(amqp_topology, durable_changes_are_reported_once) {
    amqp_topology t;
    EXPECT_FALSE(t.take_durable_change());
    exchange(t, "transient", "fanout", false);
    queue(t, "tq", false);
    bind(t, qb("transient", "tq"));
    queue(t, "exq", true, {}, true);
    EXPECT_FALSE(t.take_durable_change());
    exchange(t, "dx", "fanout", true);
    EXPECT_TRUE(t.take_durable_change());
    EXPECT_FALSE(t.take_durable_change());
    queue(t, "dq", true);
    EXPECT_TRUE(t.take_durable_change());
    bind(t, qb("dx", "tq"));
    EXPECT_FALSE(t.take_durable_change());
    bind(t, qb("dx", "dq"));
    EXPECT_TRUE(t.take_durable_change());
    bind(t, qb("dx", "dq"));
    EXPECT_FALSE(t.take_durable_change());
    EXPECT_FALSE(t.unbind(qb("dx", "dq")));
    EXPECT_TRUE(t.take_durable_change());
    t.remove_queue("dq");
    EXPECT_TRUE(t.take_durable_change());
    EXPECT_FALSE(t.delete_exchange("dx", false));
    EXPECT_TRUE(t.take_durable_change());
    t.remove_queue("tq");
    EXPECT_FALSE(t.take_durable_change());
}

TEST(amqp_topology, save_load_round_trip_keeps_durable_state_only) {
    amqp_topology t;
    auto qargs = make_table({{"x-max-priority", std::uint8_t{9}},
                             {"x-expires", std::int64_t{60000}},
                             {"custom", make_table({{"n", std::int16_t{-3}}})}});
    qargs.entries[1].value.tag = 'L';
    exchange(t, "dx", "topic", true, false);
    exchange(t, "dy", "headers", true, true);
    exchange(t, "tx", "fanout", false);
    queue(t, "celery@host.celery.pidbox", true, qargs);
    queue(t, "bin\xff\xfe", true);
    queue(t, "tq", false);
    queue(t, "exq", true, {}, true);
    bind(t, qb("dx", "celery@host.celery.pidbox", "a.*"));
    bind(t, qb("dx", "bin\xff\xfe", "k\xfe"));
    bind(t, xb("dx", "dy", "#"));
    bind(t, qb("dy", "celery@host.celery.pidbox", "", make_table({{"h", amqp::void_value{}}})));
    bind(t, qb("amq.direct", "celery@host.celery.pidbox", "celery"));
    bind(t, qb("dx", "tq", "a.*"));
    bind(t, qb("tx", "celery@host.celery.pidbox"));
    bind(t, qb("dx", "exq", "#"));
    std::string saved = t.save();

    amqp_topology u;
    auto err = u.load(saved, 777);
    ASSERT_FALSE(err) << *err;
    EXPECT_FALSE(u.take_durable_change());
    EXPECT_EQ(u.save(), saved);
    EXPECT_EQ(u.exchange_count(), 8u);
    EXPECT_EQ(u.find_exchange("tx"), nullptr);
    EXPECT_TRUE(u.find_exchange("dy")->auto_delete);
    EXPECT_EQ(u.find_exchange("dy")->kind, exchange_kind::headers);
    EXPECT_EQ(u.queue_count(), 2u);
    const amqp_queue* q = u.find_queue("celery@host.celery.pidbox");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->arguments, qargs);  // tags kept ('L')
    EXPECT_EQ(q->args.max_priority, 9);
    EXPECT_EQ(q->args.expires_ms, 60000);
    EXPECT_EQ(q->last_used_us, 777);
    EXPECT_NE(u.find_queue("bin\xff\xfe"), nullptr);
    EXPECT_EQ(route(u, "dx", "a.b"), names{"celery@host.celery.pidbox"});
    EXPECT_EQ(route(u, "dx", "k\xfe"), names{"bin\xff\xfe"});
    auto h = make_table({{"h", std::int32_t{1}}});
    EXPECT_EQ(route(u, "dx", "zz", &h), names{"celery@host.celery.pidbox"});
    EXPECT_EQ(route(u, "amq.direct", "celery"), names{"celery@host.celery.pidbox"});
}

TEST(amqp_topology, load_of_garbage_changes_nothing) {
    amqp_topology t;
    queue(t, "keep", true);
    const std::string before = t.save();
    for (
        const char* bad :
        {"", "not json", "[]", "{}", R"({"version":2,"exchanges":[],"queues":[],"bindings":[]})",
         R"({"version":1,"exchanges":{},"queues":[],"bindings":[]})",
         R"({"version":1,"exchanges":[{"name":"x","type":"weird"}],"queues":[],"bindings":[]})",
         R"({"version":1,"exchanges":[{"name":"x","type":"direct"}],"queues":[{"name":"q","arguments":"zz"}],"bindings":[]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":"q","arguments":"0000000100"}],"bindings":[]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":"q","arguments":"0000000f09782d657870697265734900000000"}],"bindings":[]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":"q2"}],"bindings":[{"source":"nox","destination":"q2","key":""}]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":"keep"}],"bindings":[]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":""}],"bindings":[]})",
         R"({"version":1,"exchanges":[],"queues":[{"name":"q3","auto_delete":"yes"}],"bindings":[]})"}) {
        auto err = t.load(bad, 0);
        EXPECT_TRUE(err) << bad;
        EXPECT_EQ(t.save(), before) << bad;
        EXPECT_EQ(t.exchange_count(), 6u);
        EXPECT_EQ(t.queue_count(), 1u);
    }
    // An empty document is valid.
    EXPECT_FALSE(t.load(R"({"version":1,"exchanges":[],"queues":[],"bindings":[]})", 0));
}

}  // namespace

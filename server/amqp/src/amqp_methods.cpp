// The AMQP method table: one row per method a client may send on an open channel (the
// connection and channel classes are the connection machine's), with its handler. And the
// exchange, queue and binding methods, whose durable changes reach the topology file before
// their reply (amqp_vhost::commit_durable_change). Publish is in amqp_publish.cpp; consume,
// get, ack and qos in amqp_consume.cpp; permissions in amqp_access.cpp.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <algorithm>
#include <array>

namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {

struct amqp_session::method_row {
    amqp::method_key key;
    handler run;
};

const amqp_session::method_row* amqp_session::find_method(amqp::method_key key) {
    using s = amqp_session;
    // Sorted by key (class, method) for the binary search below.
    static constexpr std::array<method_row, 23> table{{
        {amqp::exchange_declare::id, &s::exchange_declare},        // 40.10
        {amqp::exchange_delete::id, &s::exchange_delete},          // 40.20
        {amqp::exchange_bind::id, &s::exchange_bind},              // 40.30
        {amqp::exchange_unbind::id, &s::exchange_unbind},          // 40.40
        {amqp::queue_declare::id, &s::queue_declare},              // 50.10
        {amqp::queue_bind::id, &s::queue_bind},                    // 50.20
        {amqp::queue_purge::id, &s::queue_purge},                  // 50.30
        {amqp::queue_delete::id, &s::queue_delete},                // 50.40
        {amqp::queue_unbind::id, &s::queue_unbind},                // 50.50
        {amqp::basic_qos::id, &s::basic_qos},                      // 60.10
        {amqp::basic_consume::id, &s::basic_consume},              // 60.20
        {amqp::basic_cancel::id, &s::basic_cancel},                // 60.30
        {amqp::basic_publish::id, &s::publish},                    // 60.40
        {amqp::basic_get::id, &s::basic_get},                      // 60.70
        {amqp::basic_ack::id, &s::basic_ack},                      // 60.80
        {amqp::basic_reject::id, &s::basic_reject},                // 60.90
        {amqp::basic_recover_async::id, &s::basic_recover_async},  // 60.100
        {amqp::basic_recover::id, &s::basic_recover},              // 60.110
        {amqp::basic_nack::id, &s::basic_nack},                    // 60.120
        {amqp::confirm_select::id, &s::confirm_select},            // 85.10
        {amqp::tx_select::id, &s::tx_method},                      // 90.10
        {amqp::tx_commit::id, &s::tx_method},                      // 90.20
        {amqp::tx_rollback::id, &s::tx_method},                    // 90.30
    }};
    static_assert(std::is_sorted(table.begin(), table.end(), [](const auto& a, const auto& b) {
        return a.key.key() < b.key.key();
    }));
    auto it =
        std::lower_bound(table.begin(), table.end(), key.key(),
                         [](const method_row& r, std::uint32_t k) { return r.key.key() < k; });
    return it != table.end() && it->key == key ? &*it : nullptr;
}

amqp_session::result amqp_session::dispatch(amqp_channel& ch, amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    if (const auto* row = find_method(key)) return (this->*row->run)(ch, cmd);
    return connection_exception(
        amqp::reply_code::command_invalid,
        "COMMAND_INVALID - unexpected " + amqp::describe(key) + " from a client");
}

amqp_session::result amqp_session::confirm_select(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::confirm_select>(cmd.method);
    ch.select_confirms();
    if (!m.no_wait) send(ch.number(), amqp::confirm_select_ok{});
    return std::nullopt;
}

amqp_session::result amqp_session::tx_method(amqp_channel&, amqp::command&) {
    return channel_exception(amqp::reply_code::not_implemented,
                             "NOT_IMPLEMENTED - transactions (tx.select) are not supported; "
                             "use publisher confirms (confirm.select)");
}

// ---- exchanges (their permissions: amqp_access.cpp) -----------------------------------------

/* exchange.declare <exchange> <type> [passive] [durable] [auto-delete] [internal] */
amqp_session::result amqp_session::exchange_declare(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::exchange_declare>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    // Only a new durable exchange changes the file (an existing one is only compared).
    const bool creates = !m.passive && vhost_.topology().find_exchange(m.exchange) == nullptr;
    auto before = vhost_.before_durable_change(m.durable && creates);
    if (auto e = vhost_.topology().declare_exchange(m.exchange, m.type, m.passive, m.durable,
                                                    m.auto_delete, m.internal, m.arguments))
        return e;
    if (auto e = vhost_.commit_durable_change(before)) return e;
    if (!m.no_wait) send(ch.number(), amqp::exchange_declare_ok{});
    return std::nullopt;
}

/* exchange.delete <exchange> [if-unused] */
amqp_session::result amqp_session::exchange_delete(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::exchange_delete>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    auto& topo = vhost_.topology();
    const auto* x = topo.find_exchange(m.exchange);
    auto before = vhost_.before_durable_change(x != nullptr && x->durable);
    if (auto e = topo.delete_exchange(m.exchange, m.if_unused)) return e;
    if (auto e = vhost_.commit_durable_change(before)) return e;
    if (!m.no_wait) send(ch.number(), amqp::exchange_delete_ok{});
    return std::nullopt;
}

amqp_session::result amqp_session::change_binding(const amqp_binding& b, bool bind) {
    auto& topo = vhost_.topology();
    // Only a binding from a durable exchange can be durable (the destination must be too).
    const auto* source = topo.find_exchange(b.source);
    auto before = vhost_.before_durable_change(source != nullptr && source->durable);
    if (auto e = bind ? topo.bind(b) : topo.unbind(b)) return e;
    return vhost_.commit_durable_change(before);
}

/* exchange.bind <destination> <source> <routing-key> [arguments] */
amqp_session::result amqp_session::exchange_bind(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::exchange_bind>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    if (auto e = change_binding({m.source, m.destination, true, m.routing_key, m.arguments}, true))
        return e;
    if (!m.no_wait) send(ch.number(), amqp::exchange_bind_ok{});
    return std::nullopt;
}

/* exchange.unbind <destination> <source> <routing-key> [arguments] */
amqp_session::result amqp_session::exchange_unbind(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::exchange_unbind>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    if (auto e = change_binding({m.source, m.destination, true, m.routing_key, m.arguments}, false))
        return e;
    if (!m.no_wait) send(ch.number(), amqp::exchange_unbind_ok{});
    return std::nullopt;
}

// ---- queues -------------------------------------------------------------------------------

/* queue.declare [<queue>] [passive] [durable] [exclusive] [auto-delete] [arguments] */
amqp_session::result amqp_session::queue_declare(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::queue_declare>(cmd.method);
    const auto now = service_.now();
    std::string name = m.queue;
    if (name.empty()) {
        if (m.passive) {
            return channel_exception(amqp::reply_code::not_found,
                                     "NOT_FOUND - no queue '' in vhost '/'");
        }
        name = vhost_.generate_name("amq.gen-");
    }
    if (m.passive) {
        auto q = usable_queue(name, auth::verb::inspect);
        if (!q) {
            // Passive declare needs no rights beyond seeing the queue: any verb will do.
            if (q.error().code != amqp::reply_code::access_refused) return q.error();
            auto again = usable_queue(name, std::nullopt);
            if (!again) return again.error();
        }
        (*vhost_.find_queue(name)).last_used_us = now.mono_us;
    } else {
        if (auto e = check_access("queue", name, {auth::verb::enqueue, auth::verb::consume},
                                  "enqueue or consume"))
            return e;
        // A queue that so far exists only in the core (created over RESP) is declared here
        // with the flags and arguments given, like a new one.
        // Only a new durable queue, or one so far adopted from the core, changes the file (a
        // declared one is only compared): no copy of the topology for a redeclaration.
        const auto* existing = vhost_.topology().find_queue(name);
        const bool changes = existing == nullptr || existing->adopted;
        auto before = vhost_.before_durable_change(m.durable && !m.exclusive && changes);
        auto r = vhost_.topology().declare_queue(name, false, m.durable, m.exclusive, m.auto_delete,
                                                 m.arguments, client_.id, now.mono_us);
        if (!r) return r.error();
        if (auto e = vhost_.commit_durable_change(before)) return e;
    }
    if (!m.no_wait) {
        send(ch.number(),
             amqp::queue_declare_ok{
                 name, static_cast<std::uint32_t>(service_.core().ready_count(name, now)),
                 static_cast<std::uint32_t>(vhost_.consumer_count(name))});
    }
    return std::nullopt;
}

/* queue.bind <queue> <exchange> <routing-key> [arguments] */
amqp_session::result amqp_session::queue_bind(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::queue_bind>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    auto q = usable_queue(m.queue, auth::verb::enqueue);
    if (!q) return q.error();
    if (auto e = change_binding({m.exchange, m.queue, false, m.routing_key, m.arguments}, true))
        return e;
    if (!m.no_wait) send(ch.number(), amqp::queue_bind_ok{});
    return std::nullopt;
}

/* queue.unbind <queue> <exchange> <routing-key> [arguments] */
amqp_session::result amqp_session::queue_unbind(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::queue_unbind>(cmd.method);
    if (auto e = exchange_access(cmd.method)) return e;
    auto q = usable_queue(m.queue, auth::verb::enqueue);
    if (!q) return q.error();
    if (auto e = change_binding({m.exchange, m.queue, false, m.routing_key, m.arguments}, false))
        return e;
    send(ch.number(), amqp::queue_unbind_ok{});
    return std::nullopt;
}

/* queue.purge <queue> */
amqp_session::result amqp_session::queue_purge(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::queue_purge>(cmd.method);
    auto q = usable_queue(m.queue, auth::verb::admin);
    if (!q) return q.error();
    const auto n = service_.core().purge(m.queue, service_.now());
    if (!m.no_wait) send(ch.number(), amqp::queue_purge_ok{static_cast<std::uint32_t>(n)});
    return std::nullopt;
}

/* queue.delete <queue> [if-unused] [if-empty] */
amqp_session::result amqp_session::queue_delete(amqp_channel& ch, amqp::command& cmd) {
    const auto& m = std::get<amqp::queue_delete>(cmd.method);
    auto* existing = vhost_.find_queue(m.queue);
    if (!existing) {
        // RabbitMQ 3.x: deleting a queue that does not exist succeeds.
        if (!m.no_wait) send(ch.number(), amqp::queue_delete_ok{0});
        return std::nullopt;
    }
    auto q = usable_queue(m.queue, auth::verb::admin);
    if (!q) return q.error();
    const auto now = service_.now();
    if (m.if_unused && vhost_.consumer_count(m.queue) > 0) {
        return channel_exception(
            amqp::reply_code::precondition_failed,
            "PRECONDITION_FAILED - queue " + in_quotes(m.queue) + " in vhost '/' in use");
    }
    if (m.if_empty && service_.core().ready_count(m.queue, now) > 0) {
        return channel_exception(
            amqp::reply_code::precondition_failed,
            "PRECONDITION_FAILED - queue " + in_quotes(m.queue) + " in vhost '/' is not empty");
    }
    // The file first: on a full disk nothing is deleted, the tasks in the core included.
    auto before = vhost_.before_durable_change((*q)->durable && !(*q)->exclusive);
    if (before) {
        vhost_.topology().remove_queue(m.queue);
        if (auto e = vhost_.commit_durable_change(before)) return e;
    }
    const auto n = vhost_.delete_queue(m.queue);
    if (!m.no_wait) send(ch.number(), amqp::queue_delete_ok{static_cast<std::uint32_t>(n)});
    return std::nullopt;
}

}  // namespace conveyor::server

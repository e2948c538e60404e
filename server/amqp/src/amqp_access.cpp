// What an AMQP user may do: RabbitMQ's configure/write/read model mapped onto Conveyor's
// verbs (docs/users.md, "AMQP"), from the one access decision RESP uses too
// (access_control::access_of). A user removed from the users file is disconnected with 320
// CONNECTION_FORCED; after a reload, consumers the user's new rules no longer allow are
// cancelled (basic.cancel).
//
//   exchange.declare / delete           admin on the exchange (passive declare: any verb)
//   exchange.bind / unbind              enqueue on the destination, consume on the source
//   queue.bind / unbind                 enqueue on the queue, consume on the exchange
//   basic.publish                       enqueue on the exchange; on the default exchange,
//                                       enqueue on the routing key (the queue)
//   queue.declare                       enqueue or consume on the queue (passive: any verb)
//   basic.consume / get                 consume on the queue
//   queue.purge / delete                admin on the queue
//
// A publish is checked on its exchange only, never on the queues it reaches: whoever bound a
// queue to an exchange had the right to read from it, and another user's binding cannot
// make a publish fail.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <spdlog/spdlog.h>

#include <initializer_list>
#include <vector>

namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

using amqp_error = amqp::amqp_error;
using access_kind = access_control::access_kind;

amqp_error refusal(std::string text) {
    return channel_exception(amqp::reply_code::access_refused, std::move(text));
}

constexpr std::initializer_list<auth::verb> any_verb = {auth::verb::inspect, auth::verb::consume,
                                                        auth::verb::enqueue, auth::verb::admin};

}  // namespace

bool amqp_session::forced_out() {
    const auto kind = service_.access().access_of(client_).kind;
    if (kind == access_kind::everything || kind == access_kind::rules) return false;
    spdlog::info(
        "amqp client {} ({}): user '{}' is no longer in the users file; closing the "
        "connection (320)",
        client_.id, client_.peer, client_.user.substr(0, 128));
    close_connection(
        amqp::reply_code::connection_forced,
        "CONNECTION_FORCED - user " + in_quotes(client_.user) + " is no longer in the users file");
    return true;
}

amqp_session::result amqp_session::check_access(std::string_view kind, std::string_view name,
                                                std::initializer_list<auth::verb> verbs,
                                                std::string_view needs) {
    const auto access = service_.access().access_of(client_);
    if (access.kind == access_kind::everything) return std::nullopt;
    // Unauthenticated or removed: refused; on_command closes the connection before the
    // next method.
    if (access.kind == access_kind::rules) {
        for (const auto v : verbs) {
            if (auth::allowed(*access.rules, v, name)) return std::nullopt;
        }
    }
    ++service_.counters().noperm_rejections;
    return refusal("ACCESS_REFUSED - access to " + std::string(kind) + " " + in_quotes(name) +
                   " in vhost '/' refused for user " + in_quotes(client_.user) + " (needs " +
                   std::string(needs) + ")");
}

amqp_session::result amqp_session::check_verb(std::string_view queue, auth::verb v) {
    return check_access("queue", queue, {v}, auth::verb_name(v));
}

amqp_session::result amqp_session::check_exchange(std::string_view exchange, auth::verb v) {
    return check_access("exchange", exchange, {v}, auth::verb_name(v));
}

amqp_session::result amqp_session::exchange_access(const amqp::method& m) {
    using auth::verb;
    if (auto* x = std::get_if<amqp::exchange_declare>(&m)) {
        if (x->passive) return check_access("exchange", x->exchange, any_verb, "any verb");
        return check_exchange(x->exchange, verb::admin);
    }
    if (auto* x = std::get_if<amqp::exchange_delete>(&m))
        return check_exchange(x->exchange, verb::admin);
    if (auto* x = std::get_if<amqp::exchange_bind>(&m)) {
        if (auto e = check_exchange(x->destination, verb::enqueue)) return e;
        return check_exchange(x->source, verb::consume);
    }
    if (auto* x = std::get_if<amqp::exchange_unbind>(&m)) {
        if (auto e = check_exchange(x->destination, verb::enqueue)) return e;
        return check_exchange(x->source, verb::consume);
    }
    if (auto* x = std::get_if<amqp::queue_bind>(&m))
        return check_exchange(x->exchange, verb::consume);
    if (auto* x = std::get_if<amqp::queue_unbind>(&m))
        return check_exchange(x->exchange, verb::consume);
    return std::nullopt;
}

amqp_session::result amqp_session::publish_access(const amqp::basic_publish& m) {
    if (m.exchange.empty()) return check_verb(m.routing_key, auth::verb::enqueue);
    return check_exchange(m.exchange, auth::verb::enqueue);
}

// A queue a method names: it exists (declared over AMQP, or holding tasks enqueued over
// RESP), is not exclusive to another connection, and the user has `need` on it (without
// `need`: enqueue or consume, what declaring takes).
amqp::amqp_result<amqp_queue*> amqp_session::usable_queue(std::string_view name,
                                                          std::optional<auth::verb> need) {
    auto* q = vhost_.find_queue(name);
    if (!q) {
        amqp_error e;
        e.code = amqp::reply_code::not_found;
        e.text = "NOT_FOUND - no queue " + in_quotes(name) + " in vhost '/'";
        e.connection_error = false;
        return e;
    }
    if (auto e = vhost_.topology().check_access(*q, client_.id)) return *e;
    if (need) {
        if (auto e = check_verb(name, *need)) return *e;
    } else if (auto e = check_access("queue", name, {auth::verb::enqueue, auth::verb::consume},
                                     "enqueue or consume")) {
        return *e;
    }
    return q;
}

void amqp_session::access_changed() {
    // From tune-ok on (the user is known) until the connection closes.
    using phase = amqp_connection_fsm::phase;
    const auto p = fsm_.current();
    if (ended_ || closing_ || p < phase::tune_ok || p > phase::running) return;
    if (forced_out()) return after_batch();
    const auto access = service_.access().access_of(client_);
    if (access.kind != access_kind::rules) return;
    // Consumers go on receiving without asking again: those the new rules no longer allow
    // are cancelled, as when their queue is deleted. What they were delivered stays theirs
    // to settle.
    std::vector<amqp_consumer*> cancelled;
    for (auto& [n, ch] : channels_) {
        if (ch.closing()) continue;
        for (auto* c : ch.consumers()) {
            if (!auth::allowed(*access.rules, auth::verb::consume, c->queue))
                cancelled.push_back(c);
        }
    }
    for (auto* c : cancelled) {
        spdlog::info(
            "amqp client {} ({}): consumer '{}' of queue '{}' cancelled: user '{}' may "
            "no longer consume from it",
            client_.id, client_.peer, c->tag.substr(0, 128), c->queue.substr(0, 256),
            client_.user.substr(0, 128));
        consumer_cancelled_by_broker(*c);
    }
    after_batch();
}

}  // namespace conveyor::server

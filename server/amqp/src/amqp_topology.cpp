// AMQP exchanges and queues of the single vhost "/" (see the header); bindings and routing are
// in amqp_routing.cpp, the file's JSON in amqp_topology_json.cpp. Reply texts follow RabbitMQ
// 3.x word for word where clients or people might look at them.
#include <conveyor/amqp/amqp_topology.hpp>
#include "amqp_topology_rules.hpp"

#include <conveyor/runtime/queue_name.hpp>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <unordered_set>
#include <utility>

namespace conveyor::server {

namespace amqp = protocol::amqp;
using amqp::amqp_error;
using amqp::field_table;
using amqp::field_value;
using amqp::reply_code;
using namespace topology_rules;

namespace {

// RabbitMQ's ceiling for x-expires and x-message-ttl (an Erlang timer); it also keeps
// `ms * 1000` far from overflowing.
constexpr std::int64_t max_expiry_ms = 4294967295;
constexpr int max_priority = 255;

// does (value_negative for ">= 0", value_zero for "> 0").
amqp::amqp_result<std::int64_t> integer_arg(std::string_view queue, std::string_view arg,
                                            const field_value& v, std::int64_t min,
                                            std::int64_t max) {
    auto invalid = [&](const std::string& problem) {
        return channel_error(reply_code::precondition_failed,
                             "PRECONDITION_FAILED - invalid arg '" + std::string(arg) + "' for " +
                                 rs_queue(queue) + ": " + problem);
    };
    auto n = integer_of(v);
    if (!n) return invalid("{unacceptable_type," + std::string(type_name(v)) + "}");
    if (*n < min) {
        const char* what = *n < 0 ? "value_negative" : "value_zero";
        return invalid("{" + std::string(what) + "," + std::to_string(*n) + "}");
    }
    if (*n > max) {
        return invalid("{value_too_large," + std::to_string(*n) + "," + std::to_string(max) + "}");
    }
    return *n;
}

}  // namespace

// ---- free functions ---------------------------------------------------------------------------

std::optional<exchange_kind> parse_exchange_kind(std::string_view type) {
    if (type == "direct") return exchange_kind::direct;
    if (type == "fanout") return exchange_kind::fanout;
    if (type == "topic") return exchange_kind::topic;
    if (type == "headers") return exchange_kind::headers;
    return std::nullopt;
}

std::string_view to_string(exchange_kind kind) noexcept {
    switch (kind) {
        case exchange_kind::direct:
            return "direct";
        case exchange_kind::fanout:
            return "fanout";
        case exchange_kind::topic:
            return "topic";
        case exchange_kind::headers:
            return "headers";
    }
    return "direct";
}

amqp::amqp_result<queue_args> parse_queue_args(std::string_view queue, const field_table& args) {
    if (auto e = unimplemented_arg(queue, args)) return std::move(*e);
    queue_args out;
    if (const auto* v = args.find("x-max-priority")) {
        auto n = integer_arg(queue, "x-max-priority", *v, 0, max_priority);
        if (!n) return n.error();
        out.max_priority = static_cast<int>(*n);
    }
    if (const auto* v = args.find("x-message-ttl")) {
        auto n = integer_arg(queue, "x-message-ttl", *v, 0, max_expiry_ms);
        if (!n) return n.error();
        out.message_ttl_ms = *n;
    }
    if (const auto* v = args.find("x-expires")) {
        auto n = integer_arg(queue, "x-expires", *v, 1, max_expiry_ms);
        if (!n) return n.error();
        out.expires_ms = *n;
    }
    if (const auto* v = args.find("x-max-length")) {
        auto n =
            integer_arg(queue, "x-max-length", *v, 0, std::numeric_limits<std::int64_t>::max());
        if (!n) return n.error();
        out.max_length = *n;
    }
    if (const auto* v = args.find("x-single-active-consumer")) {
        auto b = bool_arg(queue, "x-single-active-consumer", *v);
        if (!b) return b.error();
        out.single_active_consumer = *b;
    }
    if (const auto* v = args.find("x-overflow")) {
        auto reject = reject_publish_arg(queue, *v);
        if (!reject) return reject.error();
        out.reject_publish = *reject;
    }
    return out;
}

// ---- amqp_topology ----------------------------------------------------------------------------

amqp_topology::amqp_topology() {
    add_exchange("", exchange_kind::direct, true, false, false, true, {});
    add_exchange("amq.direct", exchange_kind::direct, true, false, false, true, {});
    add_exchange("amq.fanout", exchange_kind::fanout, true, false, false, true, {});
    add_exchange("amq.topic", exchange_kind::topic, true, false, false, true, {});
    add_exchange("amq.headers", exchange_kind::headers, true, false, false, true, {});
    add_exchange("amq.match", exchange_kind::headers, true, false, false, true, {});
}

amqp_topology::exchange_entry& amqp_topology::add_exchange(std::string_view name,
                                                           exchange_kind kind, bool durable,
                                                           bool auto_delete, bool internal,
                                                           bool builtin,
                                                           const field_table& arguments) {
    exchange_entry entry;
    entry.exchange = amqp_exchange{.name = std::string(name),
                                   .kind = kind,
                                   .durable = durable,
                                   .auto_delete = auto_delete,
                                   .internal = internal,
                                   .builtin = builtin,
                                   .arguments = arguments};
    return exchanges_.insert_or_assign(std::string(name), std::move(entry)).first->second;
}

// exchange.declare <name> <type> [passive durable auto-delete internal] <arguments>
std::optional<amqp_topology::error> amqp_topology::declare_exchange(std::string_view name,
                                                                    std::string_view type,
                                                                    bool passive, bool durable,
                                                                    bool auto_delete, bool internal,
                                                                    const field_table& arguments) {
    auto it = exchanges_.find(name);
    if (passive) {
        if (it == exchanges_.end()) return no_exchange(name);
        return std::nullopt;
    }
    auto kind = parse_exchange_kind(type);
    if (!kind) {
        amqp_error e =
            channel_error(reply_code::command_invalid,
                          "COMMAND_INVALID - invalid exchange type '" + std::string(type) + "'");
        e.connection_error = true;
        return e;
    }
    // RabbitMQ refuses any non-passive declare of the default exchange.
    if (name.empty()) return default_exchange_refused();
    if (it != exchanges_.end()) {
        const amqp_exchange& x = it->second.exchange;
        std::string resource = rs_exchange(name);
        if (x.kind != *kind) return inequivalent("type", resource, type, to_string(x.kind));
        if (x.durable != durable) {
            return inequivalent("durable", resource, bool_text(durable), bool_text(x.durable));
        }
        if (x.auto_delete != auto_delete) {
            return inequivalent("auto_delete", resource, bool_text(auto_delete),
                                bool_text(x.auto_delete));
        }
        if (x.internal != internal) {
            return inequivalent("internal", resource, bool_text(internal), bool_text(x.internal));
        }
        return std::nullopt;
    }
    if (reserved_name(name)) return reserved_prefix("exchange", name);
    add_exchange(name, *kind, durable, auto_delete, internal, false, arguments);
    if (durable) durable_changed_ = true;
    return std::nullopt;
}

// exchange.delete <name> [if-unused]
std::optional<amqp_topology::error> amqp_topology::delete_exchange(std::string_view name,
                                                                   bool if_unused) {
    if (name.empty()) return default_exchange_refused();
    if (reserved_name(name)) {
        return channel_error(reply_code::access_refused, "ACCESS_REFUSED - deletion of system " +
                                                             rs_exchange(name) + " not allowed");
    }
    auto it = exchanges_.find(name);
    if (it == exchanges_.end()) return std::nullopt;
    if (if_unused && !it->second.bindings.empty()) {
        return channel_error(reply_code::precondition_failed,
                             "PRECONDITION_FAILED - " + rs_exchange(name) + " in use");
    }
    std::vector<std::string> candidates;
    erase_exchange(name, candidates);
    auto_delete_exchanges(std::move(candidates));
    return std::nullopt;
}

const amqp_exchange* amqp_topology::find_exchange(std::string_view name) const {
    auto it = exchanges_.find(name);
    return it == exchanges_.end() ? nullptr : &it->second.exchange;
}

void amqp_topology::erase_exchange(std::string_view name, std::vector<std::string>& candidates) {
    auto it = exchanges_.find(name);
    if (it == exchanges_.end()) return;
    exchange_entry& x = it->second;
    // Bindings from it (their destinations forget it), then bindings to it.
    remove_bindings_if(x, [](const amqp_binding&) { return true; });
    name_set sources = std::move(x.bound_from);
    for (const auto& source_name : sources) {
        if (source_name == name) continue;
        auto s = exchanges_.find(source_name);
        if (s == exchanges_.end()) continue;
        if (remove_bindings_if(s->second, [&](const amqp_binding& b) {
                return b.to_exchange && b.destination == name;
            })) {
            candidates.push_back(source_name);
        }
    }
    if (x.exchange.durable) durable_changed_ = true;
    exchanges_.erase(it);
}

void amqp_topology::auto_delete_exchanges(std::vector<std::string> candidates) {
    while (!candidates.empty()) {
        std::string name = std::move(candidates.back());
        candidates.pop_back();
        auto it = exchanges_.find(name);
        if (it == exchanges_.end()) continue;
        const exchange_entry& x = it->second;
        if (!x.exchange.auto_delete || x.exchange.builtin || !x.bindings.empty()) continue;
        erase_exchange(name, candidates);
    }
}

// ---- queues -------------------------------------------------------------------------------------

// queue.declare <name> [passive durable exclusive auto-delete] <arguments>
namespace {

// A redeclaration must match: 406 naming the first argument that differs.
std::optional<amqp_error> inequivalent_queue(const amqp_queue& q, bool durable, bool exclusive,
                                             bool auto_delete, const queue_args& args) {
    const std::string resource = rs_queue(q.name);
    if (q.durable != durable) {
        return inequivalent("durable", resource, bool_text(durable), bool_text(q.durable));
    }
    if (q.exclusive != exclusive) {
        return inequivalent("exclusive", resource, bool_text(exclusive), bool_text(q.exclusive));
    }
    if (q.auto_delete != auto_delete) {
        return inequivalent("auto_delete", resource, bool_text(auto_delete),
                            bool_text(q.auto_delete));
    }
    auto text = [](const auto& v) { return v ? std::to_string(*v) : std::string("none"); };
    if (args.max_priority != q.args.max_priority) {
        return inequivalent("x-max-priority", resource, text(args.max_priority),
                            text(q.args.max_priority));
    }
    if (args.message_ttl_ms != q.args.message_ttl_ms) {
        return inequivalent("x-message-ttl", resource, text(args.message_ttl_ms),
                            text(q.args.message_ttl_ms));
    }
    if (args.expires_ms != q.args.expires_ms) {
        return inequivalent("x-expires", resource, text(args.expires_ms), text(q.args.expires_ms));
    }
    if (args.max_length != q.args.max_length) {
        return inequivalent("x-max-length", resource, text(args.max_length),
                            text(q.args.max_length));
    }
    if (args.single_active_consumer != q.args.single_active_consumer) {
        return inequivalent("x-single-active-consumer", resource,
                            bool_text(args.single_active_consumer),
                            bool_text(q.args.single_active_consumer));
    }
    if (args.reject_publish != q.args.reject_publish) {
        auto overflow = [](bool reject) { return reject ? "reject-publish" : "drop-head"; };
        return inequivalent("x-overflow", resource, overflow(args.reject_publish),
                            overflow(q.args.reject_publish));
    }
    return std::nullopt;
}

}  // namespace

amqp::amqp_result<amqp_topology::declared> amqp_topology::declare_queue(
    std::string_view name, bool passive, bool durable, bool exclusive, bool auto_delete,
    const field_table& arguments, std::uint64_t connection, std::int64_t now_us) {
    auto it = queues_.find(name);
    if (passive || it != queues_.end()) {
        if (it == queues_.end()) return no_queue(name);
        amqp_queue& q = it->second.queue;
        if (auto e = check_access(q, connection)) return std::move(*e);
        if (!passive) {
            auto args = parse_queue_args(name, arguments);
            if (!args) return args.error();
            if (auto e = inequivalent_queue(q, durable, exclusive, auto_delete, *args))
                return std::move(*e);
            if (q.adopted) {  // declared now: saved from here on
                q.adopted = false;
                durable_changed_ = true;
            }
        }
        q.last_used_us = now_us;
        return declared{&q, false};
    }
    if (name.empty()) return no_queue(name);
    if (auto problem = queue_name_problem(name)) {
        return channel_error(reply_code::precondition_failed,
                             "PRECONDITION_FAILED - " + std::string(*problem));
    }
    if (reserved_name(name) && !name.starts_with("amq.gen-")) {
        return reserved_prefix("queue", name);
    }
    auto args = parse_queue_args(name, arguments);
    if (!args) return args.error();
    queue_entry entry;
    entry.queue = amqp_queue{.name = std::string(name),
                             .durable = durable,
                             .exclusive = exclusive,
                             .auto_delete = auto_delete,
                             .owner = exclusive ? connection : 0,
                             .arguments = arguments,
                             .args = *args,
                             .last_used_us = now_us};
    auto& q = queues_.emplace(std::string(name), std::move(entry)).first->second.queue;
    if (durable && !exclusive) durable_changed_ = true;
    return declared{&q, true};
}

amqp_queue& amqp_topology::adopt_queue(std::string_view name, std::int64_t now_us) {
    auto it = queues_.find(name);
    if (it != queues_.end()) return it->second.queue;
    queue_entry entry;
    entry.queue.name = std::string(name);
    entry.queue.durable = true;
    entry.queue.adopted = true;
    entry.queue.last_used_us = now_us;
    return queues_.emplace(std::string(name), std::move(entry)).first->second.queue;
}

amqp_queue* amqp_topology::find_queue(std::string_view name) {
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : &it->second.queue;
}

const amqp_queue* amqp_topology::find_queue(std::string_view name) const {
    auto it = queues_.find(name);
    return it == queues_.end() ? nullptr : &it->second.queue;
}

std::optional<amqp_topology::error> amqp_topology::check_access(const amqp_queue& q,
                                                                std::uint64_t connection) const {
    if (!q.exclusive || q.owner == connection) return std::nullopt;
    return channel_error(reply_code::resource_locked,
                         "RESOURCE_LOCKED - cannot obtain exclusive access to locked " +
                             rs_queue(q.name) +
                             ". It could be originally declared on another connection or the "
                             "exclusive property value does not match that of the original "
                             "declaration.");
}

void amqp_topology::remove_queue(std::string_view name) {
    auto it = queues_.find(name);
    if (it == queues_.end()) return;
    name_set sources = it->second.bound_from;
    std::vector<std::string> candidates;
    for (const auto& source_name : sources) {
        auto s = exchanges_.find(source_name);
        if (s == exchanges_.end()) continue;
        if (remove_bindings_if(s->second, [&](const amqp_binding& b) {
                return !b.to_exchange && b.destination == name;
            })) {
            candidates.push_back(source_name);
        }
    }
    if (it->second.queue.durable && !it->second.queue.exclusive) durable_changed_ = true;
    queues_.erase(it);
    auto_delete_exchanges(std::move(candidates));
}

void amqp_topology::consumer_added(amqp_queue& q, std::int64_t now_us) {
    ++q.consumers;
    q.had_consumer = true;
    q.last_used_us = now_us;
}

bool amqp_topology::consumer_removed(amqp_queue& q, std::int64_t now_us) {
    if (q.consumers > 0) --q.consumers;
    q.last_used_us = now_us;
    return q.auto_delete && q.had_consumer && q.consumers == 0;
}

std::vector<std::string> amqp_topology::queues_owned_by(std::uint64_t connection) const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : queues_) {
        if (entry.queue.exclusive && entry.queue.owner == connection) out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> amqp_topology::expired_queues(std::int64_t now_us) const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : queues_) {
        const amqp_queue& q = entry.queue;
        if (q.args.expires_ms && q.consumers == 0 &&
            now_us - q.last_used_us >= *q.args.expires_ms * 1000) {
            out.push_back(name);
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<std::int64_t> amqp_topology::next_expiry() const {
    std::optional<std::int64_t> earliest;
    for (const auto& [name, entry] : queues_) {
        const amqp_queue& q = entry.queue;
        if (!q.args.expires_ms || q.consumers != 0) continue;
        std::int64_t at = q.last_used_us + *q.args.expires_ms * 1000;
        if (!earliest || at < *earliest) earliest = at;
    }
    return earliest;
}

// ---- bindings -----------------------------------------------------------------------------------

bool amqp_topology::is_durable(const amqp_binding& b) const {
    const amqp_exchange* source = find_exchange(b.source);
    if (source == nullptr || !source->durable || b.source.empty()) return false;
    if (b.to_exchange) {
        const amqp_exchange* x = find_exchange(b.destination);
        return x != nullptr && x->durable;
    }
    const amqp_queue* q = find_queue(b.destination);
    return q != nullptr && q->durable && !q->exclusive;
}

bool amqp_topology::is_bound(const exchange_entry& source, const amqp_binding& b) const {
    auto k = source.by_key.find(b.key);
    if (k == source.by_key.end()) return false;
    destination d{b.destination, b.to_exchange};
    if (std::find(k->second.begin(), k->second.end(), d) == k->second.end()) return false;
    return std::find(source.bindings.begin(), source.bindings.end(), b) != source.bindings.end();
}

void amqp_topology::add_binding(exchange_entry& source, const amqp_binding& b) {
    source.bindings.push_back(b);
    source.by_key[b.key].push_back(destination{b.destination, b.to_exchange});
    if (b.to_exchange) {
        exchanges_.find(b.destination)->second.bound_from.insert(b.source);
    } else {
        queues_.find(b.destination)->second.bound_from.insert(b.source);
    }
    if (is_durable(b)) durable_changed_ = true;
}

bool amqp_topology::remove_bindings_if(exchange_entry& source,
                                       const std::function<bool(const amqp_binding&)>& pred) {
    std::vector<amqp_binding> removed;
    std::erase_if(source.bindings, [&](amqp_binding& b) {
        if (!pred(b)) return false;
        removed.push_back(std::move(b));
        return true;
    });
    for (const auto& b : removed) {
        if (is_durable(b)) durable_changed_ = true;
        auto k = source.by_key.find(b.key);
        if (k != source.by_key.end()) {
            auto& dests = k->second;
            auto d =
                std::find(dests.begin(), dests.end(), destination{b.destination, b.to_exchange});
            if (d != dests.end()) dests.erase(d);
            if (dests.empty()) source.by_key.erase(k);
        }
        bool still_bound =
            std::any_of(source.bindings.begin(), source.bindings.end(), [&](const amqp_binding& o) {
                return o.to_exchange == b.to_exchange && o.destination == b.destination;
            });
        if (still_bound) continue;
        if (b.to_exchange) {
            if (auto x = exchanges_.find(b.destination); x != exchanges_.end()) {
                x->second.bound_from.erase(b.source);
            }
        } else if (auto q = queues_.find(b.destination); q != queues_.end()) {
            q->second.bound_from.erase(b.source);
        }
    }
    return !removed.empty();
}

}  // namespace conveyor::server

// AMQP bindings and routing: direct, fanout, topic and headers exchanges, exchange-to-exchange
// bindings (see amqp_topology.hpp).
#include <conveyor/amqp/amqp_topology.hpp>
#include "amqp_topology_rules.hpp"

#include <algorithm>
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

// Items in the order first added, each once; a set takes over from the linear scan only for
// wide fan-outs.
template <class T>
struct distinct {
    static constexpr std::size_t linear_limit = 16;
    std::vector<T> items;
    std::unordered_set<T> seen;  // filled once items outgrow linear_limit

    void add(T item) {
        if (items.size() < linear_limit) {
            if (std::find(items.begin(), items.end(), item) != items.end()) return;
        } else {
            if (seen.empty()) seen.insert(items.begin(), items.end());
            if (!seen.insert(item).second) return;
        }
        items.push_back(item);
    }
};

// Header values compare by value, integers across widths (pika and py-amqp choose the tag
// from the magnitude), like RabbitMQ's Erlang term comparison.
bool same_value(const field_value& a, const field_value& b) {
    if (auto x = integer_of(a)) {
        auto y = integer_of(b);
        return y && *x == *y;
    }
    return a == b;
}

// Headers exchange: the binding's arguments (x- ones aside, unless *-with-x; never x-match)
// against the message headers; a void argument asks for presence only.
bool headers_match(const field_table& binding, const field_table* headers) {
    auto mode = parse_match_mode(binding.find("x-match")).value_or(match_mode::all);
    bool any = mode == match_mode::any || mode == match_mode::any_with_x;
    bool with_x = mode == match_mode::all_with_x || mode == match_mode::any_with_x;
    for (const auto& e : binding.entries) {
        if (e.name == "x-match" || (!with_x && e.name.starts_with("x-"))) continue;
        const field_value* h = headers != nullptr ? headers->find(e.name) : nullptr;
        bool ok = h != nullptr && (e.value.tag == 'V' || same_value(e.value, *h));
        if (any && ok) return true;
        if (!any && !ok) return false;
    }
    return !any;
}
}  // namespace

// Words are split on '.'; "" has no words, "a." has "a" and "". '#' is matched like '*' in a
// glob and '*' like '?', by the linear-space greedy algorithm with one backtrack point (the
// last '#'): O(words(pattern) * words(key)) at worst, no recursion.
bool topic_matches(std::string_view pattern, std::string_view routing_key) {
    constexpr std::size_t end = std::string_view::npos;
    // A cursor is the offset of a word's first byte, or `end` past the last word.
    auto first = [&](std::string_view s) { return s.empty() ? end : 0; };
    auto next = [&](std::string_view s, std::size_t at) {
        auto dot = s.find('.', at);
        return dot == end ? end : dot + 1;
    };
    auto word = [&](std::string_view s, std::size_t at) {
        auto dot = s.find('.', at);
        return s.substr(at, dot == end ? end : dot - at);
    };

    std::size_t p = first(pattern);
    std::size_t k = first(routing_key);
    std::size_t star_p = end;  // the pattern word after the last '#' seen
    std::size_t star_k = end;  // the key word that '#' is to absorb next on a mismatch
    bool have_star = false;
    while (k != end) {
        std::string_view pw = p == end ? std::string_view{} : word(pattern, p);
        if (p != end && pw == "#") {
            have_star = true;
            star_p = next(pattern, p);
            star_k = k;
            p = star_p;
        } else if (p != end && (pw == "*" || pw == word(routing_key, k))) {
            p = next(pattern, p);
            k = next(routing_key, k);
        } else if (have_star) {
            star_k = next(routing_key, star_k);
            k = star_k;
            p = star_p;
        } else {
            return false;
        }
    }
    while (p != end && word(pattern, p) == "#") p = next(pattern, p);
    return p == end;
}

namespace {

// RabbitMQ names every missing end: "no exchange 'x' in vhost '/' and no queue 'q' ...".
std::optional<amqp_error> missing_ends(bool source_found, bool destination_found,
                                       const amqp_binding& b) {
    std::string text;
    if (!source_found) text = "no " + rs_exchange(b.source);
    if (!destination_found) {
        if (!text.empty()) text += " and ";
        text += "no " + (b.to_exchange ? rs_exchange(b.destination) : rs_queue(b.destination));
    }
    if (text.empty()) return std::nullopt;
    return channel_error(reply_code::not_found, "NOT_FOUND - " + text);
}

}  // namespace

// queue.bind <queue> <exchange> <routing-key> <arguments>
// exchange.bind <destination> <source> <routing-key> <arguments>
std::optional<amqp_topology::error> amqp_topology::bind(const amqp_binding& b) {
    if (b.source.empty() || (b.to_exchange && b.destination.empty())) {
        return default_exchange_refused();
    }
    auto s = exchanges_.find(b.source);
    bool destination_found =
        b.to_exchange ? exchanges_.contains(b.destination) : queues_.contains(b.destination);
    if (auto e = missing_ends(s != exchanges_.end(), destination_found, b)) return e;
    exchange_entry& source = s->second;
    if (source.exchange.kind == exchange_kind::headers) {
        const field_value* m = b.arguments.find("x-match");
        if (!parse_match_mode(m)) {
            const auto* text = std::get_if<std::string>(&m->value);
            std::string shown =
                text != nullptr ? "'" + *text + "'" : "of type " + std::string(type_name(*m));
            return channel_error(reply_code::precondition_failed,
                                 "PRECONDITION_FAILED - Invalid x-match field value " + shown +
                                     "; expected all, any, all-with-x, or any-with-x");
        }
    }
    if (is_bound(source, b)) return std::nullopt;
    add_binding(source, b);
    return std::nullopt;
}

// queue.unbind <queue> <exchange> <routing-key> <arguments>
// exchange.unbind <destination> <source> <routing-key> <arguments>
std::optional<amqp_topology::error> amqp_topology::unbind(const amqp_binding& b) {
    if (b.source.empty() || (b.to_exchange && b.destination.empty())) {
        return default_exchange_refused();
    }
    auto s = exchanges_.find(b.source);
    bool destination_found =
        b.to_exchange ? exchanges_.contains(b.destination) : queues_.contains(b.destination);
    if (auto e = missing_ends(s != exchanges_.end(), destination_found, b)) return e;
    if (!is_bound(s->second, b)) return std::nullopt;
    bool first = true;  // one binding: bind made them unique
    remove_bindings_if(s->second, [&](const amqp_binding& o) {
        if (!first || !(o == b)) return false;
        first = false;
        return true;
    });
    auto_delete_exchanges({b.source});
    return std::nullopt;
}

// ---- routing ------------------------------------------------------------------------------------

amqp::amqp_result<std::vector<std::string>> amqp_topology::route(std::string_view exchange,
                                                                 std::string_view routing_key,
                                                                 const field_table* headers) const {
    auto it = exchanges_.find(exchange);
    if (it == exchanges_.end()) return no_exchange(exchange);
    std::vector<std::string> out;
    if (exchange.empty()) {
        if (queues_.contains(routing_key)) out.emplace_back(routing_key);
        return out;
    }

    // Names point into this topology, which does not change during the call.
    distinct<std::string_view> hits;
    distinct<const exchange_entry*> pending;
    pending.add(&it->second);
    auto deliver = [&](std::string_view name, bool to_exchange) {
        if (!to_exchange) {
            hits.add(name);
        } else if (auto x = exchanges_.find(name); x != exchanges_.end()) {
            pending.add(&x->second);
        }
    };

    for (std::size_t i = 0; i < pending.items.size(); ++i) {
        const exchange_entry& x = *pending.items[i];
        switch (x.exchange.kind) {
            case exchange_kind::direct:
                if (auto k = x.by_key.find(routing_key); k != x.by_key.end()) {
                    for (const auto& d : k->second) deliver(d.name, d.to_exchange);
                }
                break;
            case exchange_kind::fanout:
                for (const auto& b : x.bindings) deliver(b.destination, b.to_exchange);
                break;
            case exchange_kind::topic:
                for (const auto& b : x.bindings) {
                    if (topic_matches(b.key, routing_key)) deliver(b.destination, b.to_exchange);
                }
                break;
            case exchange_kind::headers:
                for (const auto& b : x.bindings) {
                    if (headers_match(b.arguments, headers)) deliver(b.destination, b.to_exchange);
                }
                break;
        }
    }
    out.reserve(hits.items.size());
    for (auto name : hits.items) out.emplace_back(name);
    return out;
}

}  // namespace conveyor::server

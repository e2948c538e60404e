// AMQP exchanges, queues, bindings and routing of the single vhost "/" (see the header). Reply
// texts follow RabbitMQ 3.x word for word where clients or people might look at them.
#include <conveyor/amqp/amqp_topology.hpp>

#include <conveyor/runtime/queue_name.hpp>

#include <boost/json.hpp>

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

namespace {

// RabbitMQ's ceiling for x-expires and x-message-ttl (an Erlang timer); it also keeps
// `ms * 1000` far from overflowing.
constexpr std::int64_t max_expiry_ms = 4294967295;
constexpr int max_priority = 255;

amqp_error channel_error(reply_code code, std::string text) {
    amqp_error e;
    e.code = code;
    e.text = std::move(text);
    e.connection_error = false;
    return e;
}

std::string rs_exchange(std::string_view name) {
    return "exchange '" + std::string(name) + "' in vhost '/'";
}
std::string rs_queue(std::string_view name) {
    return "queue '" + std::string(name) + "' in vhost '/'";
}

amqp_error no_exchange(std::string_view name) {
    return channel_error(reply_code::not_found, "NOT_FOUND - no " + rs_exchange(name));
}
amqp_error no_queue(std::string_view name) {
    return channel_error(reply_code::not_found, "NOT_FOUND - no " + rs_queue(name));
}
amqp_error default_exchange_refused() {
    return channel_error(reply_code::access_refused,
                         "ACCESS_REFUSED - operation not permitted on the default exchange");
}
amqp_error reserved_prefix(std::string_view what, std::string_view name) {
    return channel_error(reply_code::access_refused, "ACCESS_REFUSED - " + std::string(what) +
                                                         " name '" + std::string(name) +
                                                         "' contains reserved prefix 'amq.*'");
}
amqp_error inequivalent(std::string_view arg, const std::string& resource,
                        std::string_view received, std::string_view current) {
    return channel_error(reply_code::precondition_failed,
                         "PRECONDITION_FAILED - inequivalent arg '" + std::string(arg) + "' for " +
                             resource + ": received '" + std::string(received) +
                             "' but current is '" + std::string(current) + "'");
}

std::string_view bool_text(bool b) {
    return b ? "true" : "false";
}

bool reserved_name(std::string_view name) {
    return name.starts_with("amq.");
}

// The integer alternatives of a field value (tags b B s U u I i l L), widened.
std::optional<std::int64_t> integer_of(const field_value& v) {
    return std::visit(
        [](const auto& x) -> std::optional<std::int64_t> {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
                return static_cast<std::int64_t>(x);
            } else {
                return std::nullopt;
            }
        },
        v.value);
}

// RabbitMQ's name of a field type, for "{unacceptable_type,longstr}".
std::string_view type_name(const field_value& v) {
    switch (v.tag) {
        case 't':
            return "bool";
        case 'f':
            return "float";
        case 'd':
            return "double";
        case 'D':
            return "decimal";
        case 'S':
            return "longstr";
        case 'x':
            return "binary";
        case 'A':
            return "array";
        case 'T':
            return "timestamp";
        case 'F':
            return "table";
        case 'V':
            return "void";
        default:
            return "unknown";
    }
}

// One x-argument: an integer in [min, max]; `min_problem` names a value below min as RabbitMQ
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

// Header values compare by value, integers across widths (pika and py-amqp choose the tag
// from the magnitude), like RabbitMQ's Erlang term comparison.
bool same_value(const field_value& a, const field_value& b) {
    if (auto x = integer_of(a)) {
        auto y = integer_of(b);
        return y && *x == *y;
    }
    return a == b;
}

enum class match_mode { all, any, all_with_x, any_with_x };

std::optional<match_mode> parse_match_mode(const field_value* v) {
    if (v == nullptr) return match_mode::all;
    const auto* s = std::get_if<std::string>(&v->value);
    if (s == nullptr) return std::nullopt;
    if (*s == "all") return match_mode::all;
    if (*s == "any") return match_mode::any;
    if (*s == "all-with-x") return match_mode::all_with_x;
    if (*s == "any-with-x") return match_mode::any_with_x;
    return std::nullopt;
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

// ---- persistence helpers ------------------------------------------------------------------

std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
    if (hex.size() % 2 != 0) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        int hi = nibble(hex[i]);
        int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
    }
    return out;
}

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80         ? 1
                        : (c >> 5) == 6  ? 2
                        : (c >> 4) == 14 ? 3
                        : (c >> 3) == 30 ? 4
                                         : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        }
        i += n;
    }
    return true;
}

// AMQP names and keys are bytes: text when it is UTF-8, else "<field>_hex".
void put_bytes(boost::json::object& o, std::string_view field, std::string_view bytes) {
    if (valid_utf8(bytes)) {
        o[field] = bytes;
    } else {
        o[std::string(field) + "_hex"] = to_hex(bytes);
    }
}

std::optional<std::string> get_bytes(const boost::json::object& o, std::string_view field) {
    if (const auto* v = o.if_contains(field)) {
        if (const auto* s = v->if_string()) return std::string(*s);
        return std::nullopt;
    }
    if (const auto* v = o.if_contains(std::string(field) + "_hex")) {
        if (const auto* s = v->if_string()) return from_hex(*s);
    }
    return std::nullopt;
}

std::string table_hex(const field_table& t) {
    std::string bytes;
    amqp::encode_table(bytes, t);
    return to_hex(bytes);
}

std::optional<field_table> get_table(const boost::json::object& o) {
    const auto* v = o.if_contains("arguments");
    if (v == nullptr) return field_table{};
    const auto* s = v->if_string();
    if (s == nullptr) return std::nullopt;
    auto bytes = from_hex(*s);
    if (!bytes || bytes->size() < 4) return std::nullopt;
    auto* p = reinterpret_cast<const unsigned char*>(bytes->data());
    std::uint32_t len = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                        (std::uint32_t{p[2]} << 8) | p[3];
    if (len != bytes->size() - 4) return std::nullopt;
    auto table = amqp::decode_table_body(std::string_view(*bytes).substr(4));
    if (!table) return std::nullopt;
    return std::move(table.value());
}

std::optional<bool> get_bool(const boost::json::object& o, std::string_view field) {
    const auto* v = o.if_contains(field);
    if (v == nullptr) return false;
    if (const auto* b = v->if_bool()) return *b;
    return std::nullopt;
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
    return out;
}

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
            std::string resource = rs_queue(name);
            if (q.durable != durable) {
                return inequivalent("durable", resource, bool_text(durable), bool_text(q.durable));
            }
            if (q.exclusive != exclusive) {
                return inequivalent("exclusive", resource, bool_text(exclusive),
                                    bool_text(q.exclusive));
            }
            if (q.auto_delete != auto_delete) {
                return inequivalent("auto_delete", resource, bool_text(auto_delete),
                                    bool_text(q.auto_delete));
            }
            auto text = [](const auto& v) { return v ? std::to_string(*v) : std::string("none"); };
            if (args->max_priority != q.args.max_priority) {
                return inequivalent("x-max-priority", resource, text(args->max_priority),
                                    text(q.args.max_priority));
            }
            if (args->message_ttl_ms != q.args.message_ttl_ms) {
                return inequivalent("x-message-ttl", resource, text(args->message_ttl_ms),
                                    text(q.args.message_ttl_ms));
            }
            if (args->expires_ms != q.args.expires_ms) {
                return inequivalent("x-expires", resource, text(args->expires_ms),
                                    text(q.args.expires_ms));
            }
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

template <class Pred>
bool amqp_topology::remove_bindings_if(exchange_entry& source, Pred pred) {
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

    // Names point into this topology, which does not change during the call. Sets take over
    // from linear scans only for wide fan-outs.
    constexpr std::size_t linear_limit = 16;
    std::vector<std::string_view> hits;
    std::unordered_set<std::string_view> hit_set;
    std::vector<const exchange_entry*> pending{&it->second};
    std::unordered_set<const exchange_entry*> visited_set;

    auto add_queue = [&](std::string_view name) {
        if (hits.size() < linear_limit) {
            if (std::find(hits.begin(), hits.end(), name) != hits.end()) return;
        } else {
            if (hit_set.empty()) hit_set.insert(hits.begin(), hits.end());
            if (!hit_set.insert(name).second) return;
        }
        hits.push_back(name);
    };
    auto add_exchange_dest = [&](std::string_view name) {
        auto x = exchanges_.find(name);
        if (x == exchanges_.end()) return;
        const exchange_entry* e = &x->second;
        if (pending.size() < linear_limit) {
            if (std::find(pending.begin(), pending.end(), e) != pending.end()) return;
        } else {
            if (visited_set.empty()) visited_set.insert(pending.begin(), pending.end());
            if (!visited_set.insert(e).second) return;
        }
        pending.push_back(e);
    };
    auto deliver = [&](std::string_view name, bool to_exchange) {
        if (to_exchange) {
            add_exchange_dest(name);
        } else {
            add_queue(name);
        }
    };

    for (std::size_t i = 0; i < pending.size(); ++i) {
        const exchange_entry& x = *pending[i];
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
    out.reserve(hits.size());
    for (auto name : hits) out.emplace_back(name);
    return out;
}

// ---- persistence --------------------------------------------------------------------------------

std::string amqp_topology::save() const {
    namespace json = boost::json;
    auto sorted_names = [](const auto& map) {
        std::vector<std::string_view> names;
        for (const auto& [name, entry] : map) names.push_back(name);
        std::sort(names.begin(), names.end());
        return names;
    };
    json::array exchanges;
    json::array bindings;
    for (auto name : sorted_names(exchanges_)) {
        const exchange_entry& x = exchanges_.find(name)->second;
        if (x.exchange.durable && !x.exchange.builtin) {
            json::object o;
            put_bytes(o, "name", name);
            o["type"] = to_string(x.exchange.kind);
            o["auto_delete"] = x.exchange.auto_delete;
            o["internal"] = x.exchange.internal;
            o["arguments"] = table_hex(x.exchange.arguments);
            exchanges.push_back(std::move(o));
        }
        for (const auto& b : x.bindings) {
            if (!is_durable(b)) continue;
            json::object o;
            put_bytes(o, "source", b.source);
            put_bytes(o, "destination", b.destination);
            o["to_exchange"] = b.to_exchange;
            put_bytes(o, "key", b.key);
            o["arguments"] = table_hex(b.arguments);
            bindings.push_back(std::move(o));
        }
    }
    json::array queues;
    for (auto name : sorted_names(queues_)) {
        const queue_entry& entry = queues_.find(name)->second;
        const amqp_queue& q = entry.queue;
        if (!q.durable || q.exclusive) continue;
        if (q.adopted && std::none_of(entry.bound_from.begin(), entry.bound_from.end(),
                                      [&](const std::string& source) {
                                          const auto* x = find_exchange(source);
                                          return x != nullptr && x->durable && !source.empty();
                                      })) {
            continue;
        }
        json::object o;
        put_bytes(o, "name", name);
        o["auto_delete"] = q.auto_delete;
        o["arguments"] = table_hex(q.arguments);
        queues.push_back(std::move(o));
    }
    json::object doc;
    doc["version"] = 1;
    doc["exchanges"] = std::move(exchanges);
    doc["queues"] = std::move(queues);
    doc["bindings"] = std::move(bindings);
    return json::serialize(doc);
}

std::optional<std::string> amqp_topology::load(std::string_view text, std::int64_t now_us) {
    namespace json = boost::json;
    boost::system::error_code ec;
    json::value doc = json::parse(text, ec);
    if (ec) return "AMQP topology: not JSON: " + ec.message();
    const auto* root = doc.if_object();
    if (root == nullptr) return std::string("AMQP topology: not a JSON object");
    const auto* version = root->if_contains("version");
    if (version == nullptr || !version->is_int64() || version->as_int64() != 1) {
        return std::string("AMQP topology: missing or unknown version");
    }
    auto list = [&](std::string_view field) -> const json::array* {
        const auto* v = root->if_contains(field);
        return v == nullptr ? nullptr : v->if_array();
    };
    const json::array* exchanges = list("exchanges");
    const json::array* queues = list("queues");
    const json::array* bindings = list("bindings");
    if (exchanges == nullptr || queues == nullptr || bindings == nullptr) {
        return std::string("AMQP topology: exchanges, queues and bindings must be arrays");
    }

    amqp_topology next = *this;
    for (std::size_t i = 0; i < exchanges->size(); ++i) {
        auto bad = [&](std::string_view why) {
            return "AMQP topology: exchange " + std::to_string(i) + ": " + std::string(why);
        };
        const auto* o = (*exchanges)[i].if_object();
        if (o == nullptr) return bad("not an object");
        auto name = get_bytes(*o, "name");
        const auto* type = o->if_contains("type");
        auto kind = type != nullptr && type->is_string()
                        ? parse_exchange_kind(std::string_view(type->get_string()))
                        : std::nullopt;
        auto auto_delete = get_bool(*o, "auto_delete");
        auto internal = get_bool(*o, "internal");
        auto arguments = get_table(*o);
        if (!name || name->empty() || !kind || !auto_delete || !internal || !arguments) {
            return bad("bad name, type, flag or arguments");
        }
        if (next.exchanges_.contains(*name)) return bad("'" + *name + "' exists already");
        next.add_exchange(*name, *kind, true, *auto_delete, *internal, false, *arguments);
    }
    for (std::size_t i = 0; i < queues->size(); ++i) {
        auto bad = [&](std::string_view why) {
            return "AMQP topology: queue " + std::to_string(i) + ": " + std::string(why);
        };
        const auto* o = (*queues)[i].if_object();
        if (o == nullptr) return bad("not an object");
        auto name = get_bytes(*o, "name");
        auto auto_delete = get_bool(*o, "auto_delete");
        auto arguments = get_table(*o);
        if (!name || name->empty() || !auto_delete || !arguments) {
            return bad("bad name, flag or arguments");
        }
        auto args = parse_queue_args(*name, *arguments);
        if (!args) return bad(args.error().text);
        if (next.queues_.contains(*name)) return bad("'" + *name + "' exists already");
        queue_entry entry;
        entry.queue = amqp_queue{.name = *name,
                                 .durable = true,
                                 .auto_delete = *auto_delete,
                                 .arguments = std::move(*arguments),
                                 .args = *args,
                                 .last_used_us = now_us};
        next.queues_.emplace(*name, std::move(entry));
    }
    for (std::size_t i = 0; i < bindings->size(); ++i) {
        auto bad = [&](std::string_view why) {
            return "AMQP topology: binding " + std::to_string(i) + ": " + std::string(why);
        };
        const auto* o = (*bindings)[i].if_object();
        if (o == nullptr) return bad("not an object");
        auto source = get_bytes(*o, "source");
        auto destination = get_bytes(*o, "destination");
        auto to_exchange = get_bool(*o, "to_exchange");
        auto key = get_bytes(*o, "key");
        auto arguments = get_table(*o);
        if (!source || !destination || !to_exchange || !key || !arguments) {
            return bad("bad source, destination, key or arguments");
        }
        amqp_binding b{.source = std::move(*source),
                       .destination = std::move(*destination),
                       .to_exchange = *to_exchange,
                       .key = std::move(*key),
                       .arguments = std::move(*arguments)};
        if (auto e = next.bind(b)) return bad(e->text);
    }
    next.durable_changed_ = false;
    *this = std::move(next);
    return std::nullopt;
}

bool amqp_topology::take_durable_change() noexcept {
    return std::exchange(durable_changed_, false);
}

}  // namespace conveyor::server

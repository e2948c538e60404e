// The AMQP topology as the JSON document of <data-dir>/amqp-topology.json (amqp_persist.cpp
// writes and reads the file): names and arguments as hex where they are not plain UTF-8.
#include <conveyor/amqp/amqp_topology.hpp>
#include "amqp_topology_rules.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <utility>

namespace conveyor::server {

namespace amqp = protocol::amqp;
using amqp::amqp_error;
using amqp::field_table;
using amqp::field_value;
using amqp::reply_code;
using namespace topology_rules;

namespace {

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

namespace {

// nullopt, with the reason in `why`.
template <class T>
std::optional<T> unusable(std::string& why, std::string reason) {
    why = std::move(reason);
    return std::nullopt;
}

// One entry of the file, read; `why` says what is wrong when it cannot be used.
struct exchange_row {
    std::string name;
    exchange_kind kind = exchange_kind::direct;
    bool auto_delete = false;
    bool internal = false;
    field_table arguments;
};
struct queue_row {
    std::string name;
    bool auto_delete = false;
    field_table arguments;
    queue_args args;
};

std::optional<exchange_row> read_exchange(const boost::json::value& v, std::string& why) {
    const auto* o = v.if_object();
    if (o == nullptr) return unusable<exchange_row>(why, "not an object");
    auto name = get_bytes(*o, "name");
    const auto* type = o->if_contains("type");
    auto kind = type != nullptr && type->is_string()
                    ? parse_exchange_kind(std::string_view(type->get_string()))
                    : std::nullopt;
    auto auto_delete = get_bool(*o, "auto_delete");
    auto internal = get_bool(*o, "internal");
    auto arguments = get_table(*o);
    if (!name || name->empty() || !kind || !auto_delete || !internal || !arguments)
        return unusable<exchange_row>(why, "bad name, type, flag or arguments");
    return exchange_row{std::move(*name), *kind, *auto_delete, *internal, std::move(*arguments)};
}

std::optional<queue_row> read_queue(const boost::json::value& v, std::string& why) {
    const auto* o = v.if_object();
    if (o == nullptr) return unusable<queue_row>(why, "not an object");
    auto name = get_bytes(*o, "name");
    auto auto_delete = get_bool(*o, "auto_delete");
    auto arguments = get_table(*o);
    if (!name || name->empty() || !auto_delete || !arguments)
        return unusable<queue_row>(why, "bad name, flag or arguments");
    auto args = parse_queue_args(*name, *arguments);
    if (!args) return unusable<queue_row>(why, args.error().text);
    return queue_row{std::move(*name), *auto_delete, std::move(*arguments), *args};
}

std::optional<amqp_binding> read_binding(const boost::json::value& v, std::string& why) {
    const auto* o = v.if_object();
    if (o == nullptr) return unusable<amqp_binding>(why, "not an object");
    auto source = get_bytes(*o, "source");
    auto destination = get_bytes(*o, "destination");
    auto to_exchange = get_bool(*o, "to_exchange");
    auto key = get_bytes(*o, "key");
    auto arguments = get_table(*o);
    if (!source || !destination || !to_exchange || !key || !arguments)
        return unusable<amqp_binding>(why, "bad source, destination, key or arguments");
    return amqp_binding{.source = std::move(*source),
                        .destination = std::move(*destination),
                        .to_exchange = *to_exchange,
                        .key = std::move(*key),
                        .arguments = std::move(*arguments)};
}

const boost::json::array* list(const boost::json::object& root, std::string_view field) {
    const auto* v = root.if_contains(field);
    return v == nullptr ? nullptr : v->if_array();
}

}  // namespace

std::optional<std::string> amqp_topology::load(std::string_view text, std::int64_t now_us) {
    boost::system::error_code ec;
    boost::json::value doc = boost::json::parse(text, ec);
    if (ec) return "AMQP topology: not JSON: " + ec.message();
    const auto* root = doc.if_object();
    if (root == nullptr) return std::string("AMQP topology: not a JSON object");
    const auto* version = root->if_contains("version");
    if (version == nullptr || !version->is_int64() || version->as_int64() != 1) {
        return std::string("AMQP topology: missing or unknown version");
    }
    const auto* exchanges = list(*root, "exchanges");
    const auto* queues = list(*root, "queues");
    const auto* bindings = list(*root, "bindings");
    if (exchanges == nullptr || queues == nullptr || bindings == nullptr) {
        return std::string("AMQP topology: exchanges, queues and bindings must be arrays");
    }
    auto bad = [](std::string_view kind, std::size_t i, std::string_view why) {
        return "AMQP topology: " + std::string(kind) + " " + std::to_string(i) + ": " +
               std::string(why);
    };
    amqp_topology next = *this;
    std::string why;
    for (std::size_t i = 0; i < exchanges->size(); ++i) {
        auto x = read_exchange((*exchanges)[i], why);
        if (!x) return bad("exchange", i, why);
        if (next.exchanges_.contains(x->name))
            return bad("exchange", i, "'" + x->name + "' exists already");
        next.add_exchange(x->name, x->kind, true, x->auto_delete, x->internal, false, x->arguments);
    }
    for (std::size_t i = 0; i < queues->size(); ++i) {
        auto q = read_queue((*queues)[i], why);
        if (!q) return bad("queue", i, why);
        if (next.queues_.contains(q->name))
            return bad("queue", i, "'" + q->name + "' exists already");
        queue_entry entry;
        entry.queue = amqp_queue{.name = q->name,
                                 .durable = true,
                                 .auto_delete = q->auto_delete,
                                 .arguments = std::move(q->arguments),
                                 .args = q->args,
                                 .last_used_us = now_us};
        next.queues_.emplace(q->name, std::move(entry));
    }
    for (std::size_t i = 0; i < bindings->size(); ++i) {
        auto b = read_binding((*bindings)[i], why);
        if (!b) return bad("binding", i, why);
        if (auto e = next.bind(*b)) return bad("binding", i, e->text);
    }
    next.durable_changed_ = false;
    *this = std::move(next);
    return std::nullopt;
}

bool amqp_topology::take_durable_change() noexcept {
    return std::exchange(durable_changed_, false);
}

}  // namespace conveyor::server

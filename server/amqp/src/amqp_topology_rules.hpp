// What the AMQP topology files share (amqp_topology.cpp, amqp_routing.cpp,
// amqp_topology_json.cpp): RabbitMQ's error texts, reserved names, and reading x-arguments.
// Private to server/amqp/src.
#pragma once

#include <conveyor/amqp/amqp_topology.hpp>

#include <algorithm>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace conveyor::server::topology_rules {

namespace amqp = protocol::amqp;
using amqp::amqp_error;
using amqp::field_table;
using amqp::field_value;
using amqp::reply_code;

inline amqp_error channel_error(reply_code code, std::string text) {
    amqp_error e;
    e.code = code;
    e.text = std::move(text);
    e.connection_error = false;
    return e;
}

inline std::string rs_exchange(std::string_view name) {
    return "exchange '" + std::string(name) + "' in vhost '/'";
}
inline std::string rs_queue(std::string_view name) {
    return "queue '" + std::string(name) + "' in vhost '/'";
}

inline amqp_error no_exchange(std::string_view name) {
    return channel_error(reply_code::not_found, "NOT_FOUND - no " + rs_exchange(name));
}
inline amqp_error no_queue(std::string_view name) {
    return channel_error(reply_code::not_found, "NOT_FOUND - no " + rs_queue(name));
}
inline amqp_error default_exchange_refused() {
    return channel_error(reply_code::access_refused,
                         "ACCESS_REFUSED - operation not permitted on the default exchange");
}
inline amqp_error reserved_prefix(std::string_view what, std::string_view name) {
    return channel_error(reply_code::access_refused, "ACCESS_REFUSED - " + std::string(what) +
                                                         " name '" + std::string(name) +
                                                         "' contains reserved prefix 'amq.*'");
}
inline amqp_error inequivalent(std::string_view arg, const std::string& resource,
                               std::string_view received, std::string_view current) {
    return channel_error(reply_code::precondition_failed,
                         "PRECONDITION_FAILED - inequivalent arg '" + std::string(arg) + "' for " +
                             resource + ": received '" + std::string(received) +
                             "' but current is '" + std::string(current) + "'");
}

inline std::string_view bool_text(bool b) {
    return b ? "true" : "false";
}

inline bool reserved_name(std::string_view name) {
    return name.starts_with("amq.");
}

// The integer alternatives of a field value (tags b B s U u I i l L), widened.
inline std::optional<std::int64_t> integer_of(const field_value& v) {
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
inline std::string_view type_name(const field_value& v) {
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

// The x- queue arguments Conveyor implements; docs/amqp.md, "Queue arguments".
inline constexpr std::string_view implemented_queue_args[] = {
    "x-max-priority", "x-message-ttl",           "x-expires", "x-queue-type", "x-max-length",
    "x-overflow",     "x-single-active-consumer"};

// An x- argument Conveyor does not implement is refused rather than ignored (RabbitMQ ignores
// names it does not know): a queue declared with x-max-length, x-dead-letter-exchange or
// x-queue-type quorum would otherwise behave unlike what its declarer asked for, silently.
// Arguments without the x- prefix are ignored, as in RabbitMQ.
inline std::optional<amqp_error> unimplemented_arg(std::string_view queue,
                                                   const field_table& args) {
    auto refuse = [&](std::string_view arg, const std::string& problem) {
        return channel_error(reply_code::precondition_failed,
                             "PRECONDITION_FAILED - invalid arg '" + std::string(arg) + "' for " +
                                 rs_queue(queue) + ": " + problem);
    };
    for (const auto& e : args.entries) {
        if (!e.name.starts_with("x-")) continue;
        if (std::find(std::begin(implemented_queue_args), std::end(implemented_queue_args),
                      e.name) == std::end(implemented_queue_args)) {
            return refuse(e.name, "not implemented by Conveyor");
        }
        if (e.name != "x-queue-type") continue;
        const auto* type = std::get_if<std::string>(&e.value.value);
        if (type == nullptr) {
            return refuse(e.name, "{unacceptable_type," + std::string(type_name(e.value)) + "}");
        }
        if (*type == "quorum" || *type == "stream") {
            return refuse(e.name, "queue type '" + *type +
                                      "' is not implemented by Conveyor (only 'classic')");
        }
        if (*type != "classic") return refuse(e.name, "\"unsupported queue type '" + *type + "'\"");
    }
    return std::nullopt;
}

// A boolean x-argument (x-single-active-consumer).
inline amqp::amqp_result<bool> bool_arg(std::string_view queue, std::string_view arg,
                                        const field_value& v) {
    if (const auto* b = std::get_if<bool>(&v.value)) return *b;
    return channel_error(reply_code::precondition_failed,
                         "PRECONDITION_FAILED - invalid arg '" + std::string(arg) + "' for " +
                             rs_queue(queue) + ": {unacceptable_type," + std::string(type_name(v)) +
                             "}");
}

// x-overflow: true for reject-publish, false for drop-head; anything else is refused.
inline amqp::amqp_result<bool> reject_publish_arg(std::string_view queue, const field_value& v) {
    const auto* s = std::get_if<std::string>(&v.value);
    if (s != nullptr && (*s == "drop-head" || *s == "reject-publish"))
        return *s == "reject-publish";
    const std::string problem = s ? "'" + *s +
                                        "' is not implemented by Conveyor (drop-head, "
                                        "reject-publish)"
                                  : "{unacceptable_type," + std::string(type_name(v)) + "}";
    return channel_error(
        reply_code::precondition_failed,
        "PRECONDITION_FAILED - invalid arg 'x-overflow' for " + rs_queue(queue) + ": " + problem);
}

// One x-argument: an integer in [min, max]; `min_problem` names a value below min as RabbitMQ

enum class match_mode { all, any, all_with_x, any_with_x };

inline std::optional<match_mode> parse_match_mode(const field_value* v) {
    if (v == nullptr) return match_mode::all;
    const auto* s = std::get_if<std::string>(&v->value);
    if (s == nullptr) return std::nullopt;
    if (*s == "all") return match_mode::all;
    if (*s == "any") return match_mode::any;
    if (*s == "all-with-x") return match_mode::all_with_x;
    if (*s == "any-with-x") return match_mode::any_with_x;
    return std::nullopt;
}

}  // namespace conveyor::server::topology_rules

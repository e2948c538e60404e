// The checks of parse_server_args (config_parts.hpp): every value in range, words among their
// choices, durations parsed. Each message names the flag, or the file and line the setting was
// written on.
#include "config_parts.hpp"

#include <conveyor/core/types.hpp>
#include <conveyor/protocol/duration.hpp>

#include <algorithm>
#include <iterator>

namespace conveyor::server::config_detail {
namespace {

static_assert(protocol::max_duration_ms == core::max_duration_ms);

using protocol::bare_unit;

class problems {
public:
    explicit problems(const setting_origins& origins) : origins_(origins) {}

    // "conveyor server: --<name> <what>", or "conveyor server: <file>:<line>: <name> <what>"
    // when the setting came from the config file.
    std::string about(std::string_view name, std::string_view what) const {
        std::string out = "conveyor server: ";
        if (auto it = origins_.find(name); it != origins_.end()) {
            out += it->second + ": ";
        } else {
            out += "--";
        }
        out += name;
        if (!what.starts_with(':')) out += " ";
        out += what;
        return out;
    }

private:
    const setting_origins& origins_;
};

struct duration_setting {
    const char* name;
    const std::string& text;
    std::int64_t& ms;
    std::int64_t min_ms;  // 0 or 1
    std::int64_t max_ms;  // core::max_duration_ms, or less for whole_seconds
    bare_unit bare;
    bool whole_seconds;  // kept in seconds (TCP keepalive, AMQP heartbeat)
};

std::optional<std::string> parse_durations(server_config& c, const duration_texts& t,
                                           const problems& p) {
    std::int64_t keepalive_ms = 0;
    std::int64_t heartbeat_ms = 0;
    const std::int64_t max = core::max_duration_ms;
    const duration_setting settings[] = {
        {"default-lease-ms", t.default_lease, c.default_lease_ms, 1, max, bare_unit::milliseconds,
         false},
        {"result-ttl-ms", t.result_ttl, c.result_ttl_ms, 0, max, bare_unit::milliseconds, false},
        {"amqp-consumer-timeout", t.amqp_consumer_timeout, c.amqp_consumer_timeout_ms, 1, max,
         bare_unit::milliseconds, false},
        {"handshake-timeout", c.handshake_timeout, c.handshake_timeout_ms, 1, max,
         bare_unit::seconds, false},
        {"idle-timeout", c.idle_timeout, c.idle_timeout_ms, 0, max, bare_unit::seconds, false},
        {"tcp-keepalive", t.tcp_keepalive, keepalive_ms, 0, 32767'000, bare_unit::seconds, true},
        {"amqp-heartbeat", t.amqp_heartbeat, heartbeat_ms, 0, 65535'000, bare_unit::seconds, true},
    };
    for (const auto& s : settings) {
        const auto parsed = protocol::parse_duration(s.text, s.bare, s.max_ms);
        if (s.whole_seconds && (parsed.error != protocol::duration_errc::ok || parsed.ms % 1000)) {
            return p.about(s.name, "must be 0-" + std::to_string(s.max_ms / 1000) +
                                       " whole seconds (or with a unit: 5m), got '" + s.text + "'");
        }
        if (parsed.error == protocol::duration_errc::out_of_range) {
            return p.about(s.name, "is out of range (max " + std::to_string(max) + " ms), got '" +
                                       s.text + "'");
        }
        if (parsed.error != protocol::duration_errc::ok)
            return p.about(s.name, ": " + protocol::duration_error_text(s.text, parsed, s.bare));
        if (parsed.ms < s.min_ms) return p.about(s.name, "must be more than 0");
        s.ms = parsed.ms;
    }
    c.tcp_keepalive = keepalive_ms / 1000;
    c.amqp_heartbeat = heartbeat_ms / 1000;
    return std::nullopt;
}

// --fsync, --enable-debug-command, --protected-mode, --log-level and --tls-auth-clients: their
// words, parsed once.
std::optional<std::string> parse_words(server_config& c, const problems& p) {
    if (c.fsync == "always") {
        c.fsync_mode = fsync_policy::always;
    } else if (c.fsync == "everysec") {
        c.fsync_mode = fsync_policy::everysec;
    } else if (c.fsync == "no") {
        c.fsync_mode = fsync_policy::no;
    } else {
        return p.about("fsync", "must be always, everysec or no (got '" + c.fsync + "')");
    }
    if (c.enable_debug_command != "yes" && c.enable_debug_command != "no") {
        return p.about("enable-debug-command",
                       "must be yes or no (got '" + c.enable_debug_command + "')");
    }
    c.debug_command = c.enable_debug_command == "yes";
    if (c.protected_mode != "yes" && c.protected_mode != "no")
        return p.about("protected-mode", "must be yes or no (got '" + c.protected_mode + "')");
    c.loopback_only_without_auth = c.protected_mode == "yes";
    // spdlog's names (server_main sets the level); "warning" and "err" are its aliases.
    const std::string_view levels[] = {"trace", "debug", "info",     "warn", "warning",
                                       "error", "err",   "critical", "off"};
    if (std::find(std::begin(levels), std::end(levels), c.log_level) == std::end(levels)) {
        return p.about("log-level",
                       "must be trace, debug, info, warn, error, critical or off "
                       "(got '" +
                           c.log_level + "')");
    }
    const auto& auth = c.tls_auth_clients;
    if (auth == "yes") {
        c.tls_clients = client_certificates::required;
    } else if (auth == "optional") {
        c.tls_clients = client_certificates::optional;
    } else if (auth == "no") {
        c.tls_clients = client_certificates::none;
    } else {
        return p.about("tls-auth-clients", "must be yes, optional or no (got '" + auth + "')");
    }
    return std::nullopt;
}

// Counts and sizes, each with its range.
std::optional<std::string> check_numbers(server_config& c, const problems& p) {
    struct bound {
        const char* name;
        std::int64_t value;
        std::int64_t min;
        std::int64_t max;
    };
    const std::int64_t any = INT64_MAX;
    const bound bounds[] = {
        {"max-payload", c.max_payload, 1, any},
        {"default-retries", c.default_retries, 0, any},
        {"log-segment-size", c.log_segment_bytes, 4096, any},
        {"max-clients", c.max_clients, 1, any},
        {"max-args", c.max_args, 1, any},
        {"query-buffer-limit", c.query_buffer_limit, 1, any},
        {"output-buffer-limit", c.output_buffer_limit, 0, any},
        {"amqp-frame-max", c.amqp_frame_max, 4096, 128ll * 1024 * 1024},
        {"amqp-channel-max", c.amqp_channel_max, 1, 65535},
    };
    for (const auto& b : bounds) {
        if (b.value >= b.min && b.value <= b.max) continue;
        const std::string range = b.max == any
                                      ? "at least " + std::to_string(b.min)
                                      : std::to_string(b.min) + "-" + std::to_string(b.max);
        return p.about(b.name, "must be " + range + ", got " + std::to_string(b.value));
    }
    if (auto bytes = parse_memory_size(c.maxmemory)) {
        c.maxmemory_bytes = *bytes;
    } else {
        return p.about("maxmemory",
                       "must be a size in bytes, or with a unit (k, kb, m, mb, g, gb), got '" +
                           c.maxmemory + "'");
    }
    return std::nullopt;
}

std::optional<std::string> check_listeners(const server_config& c, const problems& p) {
    if (c.tls_port != 0) {
        if (c.tls_cert.empty() || c.tls_key.empty())
            return p.about("tls-port", "needs --tls-cert and --tls-key");
        if (c.tls_clients != client_certificates::none && c.tls_ca.empty()) {
            return p.about("tls-auth-clients", c.tls_auth_clients +
                                                   " needs --tls-ca (the CA client certificates "
                                                   "chain to); or set it to no");
        }
    } else if (c.port == 0 && c.amqp_port == 0) {
        return "conveyor server: --port 0, --amqp-port 0 and no --tls-port: nothing to listen on";
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> check_settings(server_config& config, const duration_texts& texts,
                                          const setting_origins& origins) {
    const problems p(origins);
    if (auto error = parse_durations(config, texts, p)) return error;
    if (auto error = parse_words(config, p)) return error;
    if (auto error = check_numbers(config, p)) return error;
    return check_listeners(config, p);
}

}  // namespace conveyor::server::config_detail

// `conveyor server` settings: command-line flags, optionally a redis.conf-style file of
// `name value` lines given first, as redis-server takes it (`conveyor server conveyor.conf
// --port 7000`), or with `--config <file>`. Flags given on the command line win. Flag names
// are exact (no prefixes); an unknown one is refused with the names it is close to.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::server {

// The settings that are a choice among words, parsed once at start (parse_server_args); the
// words stay in server_config for CONFIG GET.
enum class fsync_policy : std::uint8_t { always, everysec, no };
enum class client_certificates : std::uint8_t { required, optional, none };  // --tls-auth-clients

struct server_config {
    std::string bind = "127.0.0.1";
    std::uint16_t port = 6380;  // 0 disables the RESP listener
    std::string data_dir = "./data";
    std::string log_level = "info";
    std::int64_t default_lease_ms = 30000;
    int default_retries = 3;
    std::int64_t max_payload = 64ll * 1024 * 1024;
    std::int64_t result_ttl_ms = 86400000;
    std::string fsync = "always";  // always | everysec | no (storage::parse_fsync_mode)
    std::int64_t log_segment_bytes = 64ll * 1024 * 1024;  // a segment is closed past this size
    std::string enable_debug_command = "no";              // yes: DEBUG LOG-FAULT (tests)
    std::string config_file;                              // empty when none was given
    // ---- security (docs/users.md) ----
    std::string requirepass;             // the `default` user's password; empty: none
    std::string users_file;              // --users: users, password hashes and rules; empty: none
    std::string protected_mode = "yes";  // yes: without password or users, loopback only
    std::string maxmemory = "0";         // as written (100mb, 2gb, bytes); 0: no limit
    std::int64_t maxmemory_bytes = 0;    // parsed from `maxmemory`
    // ---- connections, limits and TLS (docs/limits.md, docs/tls.md) ----
    std::uint16_t tls_port = 0;  // 0: no TLS listener
    std::string tls_cert;
    std::string tls_key;
    std::string tls_ca;
    std::string tls_auth_clients = "yes";   // yes | optional | no (client certificates)
    std::string handshake_timeout = "10s";  // as written (protocol::parse_duration, bare: s)
    std::int64_t handshake_timeout_ms = 10000;
    std::string idle_timeout = "0";  // as written (bare: s); 0: never
    std::int64_t idle_timeout_ms = 0;
    std::int64_t max_clients = 10000;
    std::int64_t max_args = std::int64_t{1024} * 1024;       // arguments of one request
    std::int64_t query_buffer_limit = 1024ll * 1024 * 1024;  // bytes of one request
    std::int64_t output_buffer_limit = 256ll * 1024 * 1024;  // unwritten replies; 0: none
    // SO_KEEPALIVE on accepted connections (both protocols): idle seconds before the first
    // probe, as Redis's tcp-keepalive (probes every third of it, 3 of them); 0: off.
    std::int64_t tcp_keepalive = 300;
    // ---- AMQP 0-9-1 (docs/amqp.md); RabbitMQ's defaults but the port ----
    // 5673, not RabbitMQ's 5672, so that both can run on one machine (as 6380 beside Redis's
    // 6379); 0 disables the AMQP listener.
    std::uint16_t amqp_port = 5673;
    std::int64_t amqp_heartbeat = 60;      // seconds proposed in Connection.Tune; 0: none
    std::int64_t amqp_frame_max = 131072;  // bytes proposed in Connection.Tune
    std::int64_t amqp_channel_max = 2047;  // channels proposed in Connection.Tune
    std::int64_t amqp_consumer_timeout_ms = 1800000;  // lease of an unacked delivery

    // ---- parsed from the words above by parse_server_args: use these, not the words ----
    fsync_policy fsync_mode = fsync_policy::always;                   // from `fsync`
    bool debug_command = false;                                       // from enable_debug_command
    bool loopback_only_without_auth = true;                           // from protected_mode
    client_certificates tls_clients = client_certificates::required;  // from tls_auth_clients

    // name/value pairs as CONFIG GET shows them (names as the flags spell them)
    std::vector<std::pair<std::string, std::string>> as_pairs() const;
};

// Outcome of parsing: a config to run with, or a message to print and an exit status
// (--help prints the flags and exits 0; a bad flag prints the error and exits 1).
struct parse_outcome {
    std::optional<server_config> config;
    std::string message;
    int exit_code = 0;
};

parse_outcome parse_server_args(const std::vector<std::string>& args);

// Redis's memory units: a bare number of bytes, or k/m/g (powers of 1000), kb/mb/gb (powers
// of 1024), case-insensitive. nullopt when malformed or negative.
std::optional<std::int64_t> parse_memory_size(std::string_view text);

}  // namespace conveyor::server

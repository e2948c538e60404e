#include <conveyor/runtime/config.hpp>

#include <conveyor/core/types.hpp>

#include <boost/program_options.hpp>

#include <cctype>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace conveyor::server {
namespace {

po::options_description make_options(server_config& c) {
    po::options_description d("conveyor server options");
    // clang-format off
    d.add_options()
        ("help,h", "print these options and exit")
        ("config", po::value(&c.config_file)->value_name("FILE"),
         "read settings from FILE (lines of `name value`, # comments); flags win")
        ("bind", po::value(&c.bind)->default_value(c.bind)->value_name("ADDR"),
         "address to listen on")
        ("port", po::value(&c.port)->default_value(c.port)->value_name("PORT"),
         "RESP (Redis protocol) port; 0 disables it")
        ("data-dir", po::value(&c.data_dir)->default_value(c.data_dir)->value_name("DIR"),
         "data directory (created if missing)")
        ("fsync", po::value(&c.fsync)->default_value(c.fsync)->value_name("MODE"),
         "when the log is synced: always (before every reply that depends on a change), "
         "everysec (once a second) or no (left to the OS)")
        ("log-segment-size", po::value(&c.log_segment_bytes)->default_value(c.log_segment_bytes)
             ->value_name("BYTES"), "log segment size: a segment is closed past it")
        ("enable-debug-command", po::value(&c.enable_debug_command)
             ->default_value(c.enable_debug_command)->value_name("yes|no"),
         "allow DEBUG LOG-FAULT (disk-fault injection for tests); never on a production server")
        ("log-level", po::value(&c.log_level)->default_value(c.log_level)->value_name("LEVEL"),
         "trace, debug, info, warn, error or off")
        ("default-lease-ms", po::value(&c.default_lease_ms)->default_value(c.default_lease_ms)
             ->value_name("MS"), "lease length when LEASE has no FOR and the task no TIMEOUT")
        ("default-retries", po::value(&c.default_retries)->default_value(c.default_retries)
             ->value_name("N"), "retries after the first attempt when ENQUEUE has no RETRIES")
        ("max-payload", po::value(&c.max_payload)->default_value(c.max_payload)
             ->value_name("BYTES"), "largest payload or result accepted, in bytes")
        ("result-ttl-ms", po::value(&c.result_ttl_ms)->default_value(c.result_ttl_ms)
             ->value_name("MS"), "how long results of ended tasks are kept")
        ("requirepass", po::value(&c.requirepass)->value_name("PASSWORD"),
         "password of the `default` user (AUTH <password>); clients must authenticate")
        ("users", po::value(&c.users_file)->value_name("FILE"),
         "users file (conveyor user add ...): names, password hashes and per-queue rules; "
         "re-read on SIGHUP")
        ("protected-mode", po::value(&c.protected_mode)->default_value(c.protected_mode)
             ->value_name("yes|no"),
         "with no password and no users, serve loopback clients only")
        ("maxmemory", po::value(&c.maxmemory)->default_value(c.maxmemory)->value_name("BYTES"),
         "past this much memory in use, ENQUEUE/LPUSH/RPUSH get -OOM (100mb, 2gb; 0: no limit)");
    d.add_options()
        ("tls-port", po::value(&c.tls_port)->default_value(c.tls_port)->value_name("PORT"),
         "TLS port (RESP over TLS 1.2+); 0 disables it")
        ("tls-cert", po::value(&c.tls_cert)->value_name("FILE"),
         "server certificate chain (PEM); re-read on SIGHUP")
        ("tls-key", po::value(&c.tls_key)->value_name("FILE"),
         "private key of the server certificate (PEM); re-read on SIGHUP")
        ("tls-ca", po::value(&c.tls_ca)->value_name("FILE"),
         "CA certificates (PEM) that client certificates must chain to")
        ("tls-auth-clients", po::value(&c.tls_auth_clients)->default_value(c.tls_auth_clients)
             ->value_name("yes|optional|no"),
         "client certificates: required, checked when given, or not asked for")
        ("handshake-timeout", po::value(&c.handshake_timeout)
             ->default_value(c.handshake_timeout)->value_name("DURATION"),
         "a TLS handshake not done by then is dropped (10, 10s, 500ms)")
        ("idle-timeout", po::value(&c.idle_timeout)->default_value(c.idle_timeout)
             ->value_name("DURATION"),
         "close a client that sent no request for this long (blocked clients excepted); 0: never")
        ("max-clients", po::value(&c.max_clients)->default_value(c.max_clients)->value_name("N"),
         "most connected clients (both ports); one more gets -ERR max number of clients reached")
        ("max-args", po::value(&c.max_args)->default_value(c.max_args)->value_name("N"),
         "most arguments in one request (after authentication)")
        ("query-buffer-limit", po::value(&c.query_buffer_limit)
             ->default_value(c.query_buffer_limit)->value_name("BYTES"),
         "most bytes one request may hold, arguments included (after authentication)")
        ("output-buffer-limit", po::value(&c.output_buffer_limit)
             ->default_value(c.output_buffer_limit)->value_name("BYTES"),
         "a client whose unwritten replies pass this is disconnected, its leases released; "
         "0: no limit")
        ("tcp-keepalive", po::value(&c.tcp_keepalive)->default_value(c.tcp_keepalive)
             ->value_name("SECONDS"),
         "TCP keepalive on client connections: first probe after this many idle seconds, "
         "then every third of it, 3 probes (0-32767; 0: off)");
    d.add_options()
        ("amqp-port", po::value(&c.amqp_port)->default_value(c.amqp_port)->value_name("PORT"),
         "AMQP 0-9-1 port (pika, amqp-tools, Celery amqp://); 0 disables it")
        ("amqp-heartbeat", po::value(&c.amqp_heartbeat)->default_value(c.amqp_heartbeat)
             ->value_name("SECONDS"),
         "heartbeat interval proposed to AMQP clients (they may choose another); 0: none")
        ("amqp-frame-max", po::value(&c.amqp_frame_max)->default_value(c.amqp_frame_max)
             ->value_name("BYTES"), "largest AMQP frame proposed to clients (4096 and up)")
        ("amqp-channel-max", po::value(&c.amqp_channel_max)->default_value(c.amqp_channel_max)
             ->value_name("N"), "most channels per AMQP connection (1-65535)")
        ("amqp-consumer-timeout", po::value(&c.amqp_consumer_timeout_ms)
             ->default_value(c.amqp_consumer_timeout_ms)->value_name("MS"),
         "an AMQP delivery not acknowledged within this is requeued and its channel closed "
         "(the lease of a delivery)");
    // clang-format on
    return d;
}

// Turns `name value` lines into `--name value` arguments for the same parser.
std::optional<std::vector<std::string>> read_config_file(const std::string& path,
                                                         std::string& error) {
    std::ifstream in(path);
    if (!in) {
        error = "cannot open config file '" + path + "'";
        return std::nullopt;
    }
    std::vector<std::string> args;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        std::istringstream words(line);
        std::string name, value, extra;
        if (!(words >> name) || name[0] == '#') continue;
        if (!(words >> value) || (words >> extra && extra[0] != '#')) {
            error = path + ":" + std::to_string(line_no) + ": expected `name value`, got '" + line +
                    "'";
            return std::nullopt;
        }
        if (value == "\"\"") value.clear();
        args.push_back("--" + name);
        args.push_back(value);
    }
    return args;
}

}  // namespace

std::optional<std::int64_t> parse_memory_size(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 15) return std::nullopt;
    std::int64_t n = 0;
    for (std::size_t i = 0; i < digits; ++i) n = n * 10 + (text[i] - '0');
    std::string unit;
    for (char c : text.substr(digits))
        unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    static constexpr std::pair<std::string_view, std::int64_t> units[] = {
        {"", 1},           {"b", 1},
        {"k", 1000},       {"kb", 1024},
        {"m", 1000000},    {"mb", 1024 * 1024},
        {"g", 1000000000}, {"gb", 1024 * 1024 * 1024},
    };
    for (const auto& [name, factor] : units) {
        if (unit == name) return n * factor;
    }
    return std::nullopt;
}

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    std::int64_t n = 0;
    for (std::size_t i = 0; i < digits; ++i) n = n * 10 + (text[i] - '0');
    const auto unit = text.substr(digits);
    if (unit.empty() || unit == "s") return n * 1000;
    if (unit == "ms") return n;
    return std::nullopt;
}

namespace {

// Every duration flag in ms has the range of every other duration (core::max_duration_ms).
std::optional<std::string> check_duration_flags(const server_config& config) {
    const std::pair<const char*, std::int64_t> flags[] = {
        {"--default-lease-ms", config.default_lease_ms},
        {"--result-ttl-ms", config.result_ttl_ms},
        {"--amqp-consumer-timeout", config.amqp_consumer_timeout_ms},
    };
    for (const auto& [name, value] : flags) {
        if (value > core::max_duration_ms) {
            return "conveyor server: " + core::out_of_range_message(name) + ", got " +
                   std::to_string(value);
        }
    }
    return std::nullopt;
}

// The TLS, limit and timeout flags; parses the durations into config. A message on error.
// --fsync, --enable-debug-command and --protected-mode: their words, parsed once.
std::optional<std::string> parse_word_settings(server_config& config) {
    if (config.fsync == "always") {
        config.fsync_mode = fsync_policy::always;
    } else if (config.fsync == "everysec") {
        config.fsync_mode = fsync_policy::everysec;
    } else if (config.fsync == "no") {
        config.fsync_mode = fsync_policy::no;
    } else {
        return "conveyor server: --fsync must be always, everysec or no (got '" + config.fsync +
               "')";
    }
    if (config.enable_debug_command != "yes" && config.enable_debug_command != "no") {
        return "conveyor server: --enable-debug-command must be yes or no";
    }
    config.debug_command = config.enable_debug_command == "yes";
    if (config.protected_mode != "yes" && config.protected_mode != "no") {
        return "conveyor server: --protected-mode must be yes or no";
    }
    config.loopback_only_without_auth = config.protected_mode == "yes";
    return std::nullopt;
}

std::optional<std::string> check_connection_settings(server_config& config) {
    const auto handshake = parse_duration_ms(config.handshake_timeout);
    const auto idle = parse_duration_ms(config.idle_timeout);
    if (!handshake || *handshake <= 0 || !idle) {
        return "conveyor server: --handshake-timeout and --idle-timeout take seconds, or a number "
               "with s or ms (10, 10s, 500ms); --handshake-timeout must not be 0";
    }
    if (*handshake > core::max_duration_ms || *idle > core::max_duration_ms) {
        return "conveyor server: --handshake-timeout and --idle-timeout are out of range (max " +
               std::to_string(core::max_duration_ms / 1000) + " s)";
    }
    config.handshake_timeout_ms = *handshake;
    config.idle_timeout_ms = *idle;
    if (config.max_clients < 1 || config.max_args < 1 || config.query_buffer_limit < 1 ||
        config.output_buffer_limit < 0) {
        return "conveyor server: --max-clients, --max-args and --query-buffer-limit must be "
               "positive, --output-buffer-limit not negative";
    }
    if (config.tcp_keepalive < 0 || config.tcp_keepalive > 32767) {
        return "conveyor server: --tcp-keepalive must be 0-32767 seconds (0: off), got " +
               std::to_string(config.tcp_keepalive);
    }
    if (config.amqp_heartbeat < 0 || config.amqp_heartbeat > 65535 ||
        config.amqp_frame_max < 4096 || config.amqp_frame_max > 128ll * 1024 * 1024 ||
        config.amqp_channel_max < 1 || config.amqp_channel_max > 65535 ||
        config.amqp_consumer_timeout_ms < 1) {
        return "conveyor server: --amqp-heartbeat must be 0-65535, --amqp-frame-max "
               "4096-134217728, --amqp-channel-max 1-65535, --amqp-consumer-timeout positive";
    }
    const auto& auth = config.tls_auth_clients;
    if (auth == "yes") {
        config.tls_clients = client_certificates::required;
    } else if (auth == "optional") {
        config.tls_clients = client_certificates::optional;
    } else if (auth == "no") {
        config.tls_clients = client_certificates::none;
    } else {
        return "conveyor server: --tls-auth-clients must be yes, optional or no (got '" + auth +
               "')";
    }
    if (config.tls_port != 0) {
        if (config.tls_cert.empty() || config.tls_key.empty()) {
            return "conveyor server: --tls-port needs --tls-cert and --tls-key";
        }
        if (config.tls_clients != client_certificates::none && config.tls_ca.empty()) {
            return "conveyor server: --tls-auth-clients " + auth +
                   " needs --tls-ca (the CA client certificates chain to); or set it to no";
        }
    } else if (config.port == 0 && config.amqp_port == 0) {
        return "conveyor server: --port 0, --amqp-port 0 and no --tls-port: nothing to listen on";
    }
    return std::nullopt;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> server_config::as_pairs() const {
    return {
        {"bind", bind},
        {"port", std::to_string(port)},
        {"data-dir", data_dir},
        {"fsync", fsync},
        {"log-segment-size", std::to_string(log_segment_bytes)},
        {"enable-debug-command", enable_debug_command},
        {"log-level", log_level},
        {"default-lease-ms", std::to_string(default_lease_ms)},
        {"default-retries", std::to_string(default_retries)},
        {"max-payload", std::to_string(max_payload)},
        {"result-ttl-ms", std::to_string(result_ttl_ms)},
        // The password itself is never shown (CONFIG GET needs admin, but logs and
        // screenshots of its output travel further than the config file).
        {"requirepass", requirepass.empty() ? "" : "(set)"},
        {"users", users_file},
        {"protected-mode", protected_mode},
        {"maxmemory", std::to_string(maxmemory_bytes)},
        {"maxmemory-policy", "noeviction"},
        // Asked for by redis-benchmark and other Redis tools at start.
        {"save", ""},
        {"appendonly", "yes"},
        {"appendfsync", fsync},
        {"tls-port", std::to_string(tls_port)},
        {"tls-cert", tls_cert},
        {"tls-key", tls_key},
        {"tls-ca", tls_ca},
        {"tls-auth-clients", tls_auth_clients},
        {"handshake-timeout", handshake_timeout},
        {"idle-timeout", idle_timeout},
        {"max-clients", std::to_string(max_clients)},
        {"max-args", std::to_string(max_args)},
        {"query-buffer-limit", std::to_string(query_buffer_limit)},
        {"output-buffer-limit", std::to_string(output_buffer_limit)},
        {"tcp-keepalive", std::to_string(tcp_keepalive)},
        {"amqp-port", std::to_string(amqp_port)},
        {"amqp-heartbeat", std::to_string(amqp_heartbeat)},
        {"amqp-frame-max", std::to_string(amqp_frame_max)},
        {"amqp-channel-max", std::to_string(amqp_channel_max)},
        {"amqp-consumer-timeout", std::to_string(amqp_consumer_timeout_ms)},
    };
}

parse_outcome parse_server_args(const std::vector<std::string>& args) {
    server_config config;
    auto desc = make_options(config);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        if (vm.count("help")) {
            std::ostringstream out;
            out << "Usage: conveyor server [options]\n\n" << desc;
            return {std::nullopt, out.str(), 0};
        }
        if (vm.count("config")) {
            std::string error;
            auto file_args = read_config_file(vm["config"].as<std::string>(), error);
            if (!file_args) return {std::nullopt, error, 1};
            // Stored after the command line: po::store keeps the first value, so flags win.
            po::store(po::command_line_parser(*file_args).options(desc).run(), vm);
        }
        po::notify(vm);
    } catch (const po::error& e) {
        return {std::nullopt,
                std::string("conveyor server: ") + e.what() + "\nTry 'conveyor server --help'.", 1};
    }
    if (config.max_payload <= 0 || config.default_lease_ms <= 0 || config.default_retries < 0 ||
        config.result_ttl_ms < 0) {
        return {std::nullopt,
                "conveyor server: --max-payload and --default-lease-ms must be positive, "
                "--default-retries and --result-ttl-ms not negative",
                1};
    }
    if (auto error = check_duration_flags(config)) return {std::nullopt, *error, 1};
    if (auto error = parse_word_settings(config)) return {std::nullopt, *error, 1};
    if (auto bytes = parse_memory_size(config.maxmemory)) {
        config.maxmemory_bytes = *bytes;
    } else {
        return {std::nullopt,
                "conveyor server: --maxmemory must be a size in bytes, or with a unit (k, kb, m, "
                "mb, g, gb), got '" +
                    config.maxmemory + "'",
                1};
    }
    if (config.log_segment_bytes < 4096) {
        return {std::nullopt, "conveyor server: --log-segment-size must be at least 4096", 1};
    }
    if (auto error = check_connection_settings(config)) return {std::nullopt, *error, 1};
    return {config, {}, 0};
}

}  // namespace conveyor::server

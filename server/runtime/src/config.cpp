#include <conveyor/runtime/config.hpp>

#include "config_parts.hpp"

#include <boost/program_options.hpp>

#include <cctype>
#include <sstream>

namespace po = boost::program_options;

namespace conveyor::server {
namespace {

po::options_description make_options(server_config& c, config_detail::duration_texts& t) {
    po::options_description d("conveyor server options");
    // clang-format off
    d.add_options()
        ("help,h", "print these options and exit")
        ("config", po::value(&c.config_file)->value_name("FILE"),
         "read settings from FILE (lines of `name value`, # comments), as a FILE given first "
         "does; flags win")
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
         "trace, debug, info, warn, error, critical or off")
        ("default-lease-ms", po::value(&t.default_lease)->default_value(t.default_lease)
             ->value_name("DURATION"),
         "lease length when LEASE has no FOR and the task no TIMEOUT (a bare number is ms)")
        ("default-retries", po::value(&c.default_retries)->default_value(c.default_retries)
             ->value_name("N"), "retries after the first attempt when ENQUEUE has no RETRIES")
        ("max-payload", po::value(&c.max_payload)->default_value(c.max_payload)
             ->value_name("BYTES"), "largest payload or result accepted, in bytes")
        ("result-ttl-ms", po::value(&t.result_ttl)->default_value(t.result_ttl)
             ->value_name("DURATION"), "how long results of ended tasks are kept (bare: ms)")
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
         "a TLS handshake not done by then is dropped (10s, 500ms; a bare number is seconds)")
        ("idle-timeout", po::value(&c.idle_timeout)->default_value(c.idle_timeout)
             ->value_name("DURATION"),
         "close a client that sent no request for this long (blocked clients excepted; bare: "
         "seconds); 0: never")
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
        ("tcp-keepalive", po::value(&t.tcp_keepalive)->default_value(t.tcp_keepalive)
             ->value_name("DURATION"),
         "TCP keepalive on client connections: first probe after this long idle (bare: "
         "seconds), then every third of it, 3 probes (0-32767 s; 0: off)");
    d.add_options()
        ("amqp-port", po::value(&c.amqp_port)->default_value(c.amqp_port)->value_name("PORT"),
         "AMQP 0-9-1 port (pika, amqp-tools, Celery amqp://); 0 disables it (5673, not "
         "RabbitMQ's 5672, so both can run on one machine)")
        ("amqp-heartbeat", po::value(&t.amqp_heartbeat)->default_value(t.amqp_heartbeat)
             ->value_name("DURATION"),
         "heartbeat interval proposed to AMQP clients (bare: seconds; they may choose "
         "another); 0: none")
        ("amqp-frame-max", po::value(&c.amqp_frame_max)->default_value(c.amqp_frame_max)
             ->value_name("BYTES"), "largest AMQP frame proposed to clients (4096 and up)")
        ("amqp-channel-max", po::value(&c.amqp_channel_max)->default_value(c.amqp_channel_max)
             ->value_name("N"), "most channels per AMQP connection (1-65535)")
        ("amqp-consumer-timeout", po::value(&t.amqp_consumer_timeout)
             ->default_value(t.amqp_consumer_timeout)->value_name("DURATION"),
         "an AMQP delivery not acknowledged within this (bare: ms) goes back to its queue as a "
         "failed attempt; the channel stays open (the lease of a delivery)");
    // clang-format on
    return d;
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

namespace {

using config_detail::did_you_mean;

// Exact long names only: Boost's default also takes any unambiguous prefix (`--data` for
// `--data-dir`, `--prot` for `--protected-mode`), which Redis never did and which turns a typo
// into a different setting.
constexpr int flag_style =
    po::command_line_style::default_style & ~po::command_line_style::allow_guessing;

constexpr const char* try_help = "\nTry 'conveyor server --help'.";

std::vector<std::string> long_names(const po::options_description& desc) {
    std::vector<std::string> names;
    for (const auto& option : desc.options()) names.push_back(option->long_name());
    return names;
}

// The first unknown flag or stray argument of a parsed command line, as a message.
std::optional<std::string> unrecognised(const po::parsed_options& parsed,
                                        const po::options_description& desc) {
    for (const auto& o : parsed.options) {
        const std::string token = o.original_tokens.empty() ? o.string_key : o.original_tokens[0];
        if (o.position_key >= 0 || (o.unregistered && (token.empty() || token[0] != '-'))) {
            return "conveyor server: unexpected argument '" + token +
                   "' (a config file goes first: conveyor server <file> [--flag value ...])" +
                   try_help;
        }
        if (!o.unregistered) continue;
        return "conveyor server: unknown option '" + token.substr(0, token.find('=')) + "'" +
               did_you_mean(config_detail::close_names(o.string_key, long_names(desc)), "--") +
               try_help;
    }
    return std::nullopt;
}

// Settings from the config file, below the command line's (po::store keeps a value already
// stored unless it was a default). Records where each one was written.
std::optional<std::string> store_file(const std::string& path, const po::options_description& desc,
                                      po::variables_map& vm,
                                      config_detail::setting_origins& origins) {
    auto file = config_detail::read_config_file(path);
    if (file.error) return "conveyor server: " + *file.error;
    std::map<std::string, int, std::less<>> seen;
    for (const auto& s : file.settings) {
        const std::string at = path + ":" + std::to_string(s.line);
        const auto* option = desc.find_nothrow(s.name, false);
        if (option == nullptr || s.name == "config" || s.name == "help") {
            return "conveyor server: " + at + ": unknown setting '" + s.name + "'" +
                   did_you_mean(config_detail::close_names(s.name, long_names(desc)), "");
        }
        if (auto [it, fresh] = seen.emplace(s.name, s.line); !fresh) {
            return "conveyor server: " + at + ": " + s.name + " is already set on line " +
                   std::to_string(it->second);
        }
        if (vm.count(s.name) && !vm[s.name].defaulted()) continue;  // a flag wins
        try {
            const std::vector<std::string> one{"--" + s.name, s.value};
            po::store(po::command_line_parser(one).options(desc).style(flag_style).run(), vm);
        } catch (const po::error& e) {
            return "conveyor server: " + at + ": " + e.what();
        }
        origins[s.name] = at;
    }
    return std::nullopt;
}

}  // namespace

parse_outcome parse_server_args(const std::vector<std::string>& args) {
    server_config config;
    config_detail::duration_texts texts;
    config_detail::setting_origins origins;
    auto desc = make_options(config, texts);
    // As redis-server: a config file may be the first argument, flags after it.
    std::vector<std::string> flags = args;
    std::string first_file;
    if (!flags.empty() && !flags[0].empty() && flags[0][0] != '-') {
        first_file = flags[0];
        flags.erase(flags.begin());
    }
    po::variables_map vm;
    try {
        const auto parsed = po::command_line_parser(flags)
                                .options(desc)
                                .style(flag_style)
                                .allow_unregistered()
                                .run();
        if (auto error = unrecognised(parsed, desc)) return {std::nullopt, *error, 1};
        po::store(parsed, vm);
        if (vm.count("help")) {
            std::ostringstream out;
            out << "Usage: conveyor server [<config-file>] [options]\n\n" << desc;
            return {std::nullopt, out.str(), 0};
        }
        if (!first_file.empty() && vm.count("config")) {
            return {std::nullopt,
                    "conveyor server: two config files ('" + first_file + "' and --config '" +
                        vm["config"].as<std::string>() + "'): give one",
                    1};
        }
        const std::string file = vm.count("config") ? vm["config"].as<std::string>() : first_file;
        if (!file.empty()) {
            if (auto error = store_file(file, desc, vm, origins)) return {std::nullopt, *error, 1};
        }
        po::notify(vm);
        config.config_file = file;
    } catch (const po::error& e) {
        return {std::nullopt, std::string("conveyor server: ") + e.what() + try_help, 1};
    }
    if (auto error = config_detail::check_settings(config, texts, origins))
        return {std::nullopt, *error, 1};
    return {config, {}, 0};
}

}  // namespace conveyor::server

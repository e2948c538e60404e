// `conveyor worker`: flags -> client::worker_options and handlers, signals -> shutdown, the
// runtime's log lines -> spdlog. The runtime itself is client/worker.hpp.
#include <conveyor/worker/worker_main.hpp>

#include "builtins.hpp"

#include <conveyor/client/worker.hpp>
#include <conveyor/protocol/duration.hpp>
#include <conveyor/worker/process_handlers.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <iostream>
#include <sstream>
#include <thread>

namespace conveyor::worker {
namespace {

namespace asio = boost::asio;
namespace po = boost::program_options;
namespace cc = conveyor::client;
using std::chrono::milliseconds;

constexpr const char* usage_line =
    "Usage: conveyor worker [--connect <url>] --queue <q> [--queue <q> ...] [--concurrency N]\n"
    "                       [--prefetch M] ( --exec '<cmd>' | --pipe '<cmd>' |\n"
    "                       --builtin echo|sleep|fail | --handlers <file> ) [options]\n"
    "       TLS: --connect rediss://host:port [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]\n";

struct worker_flags {
    std::optional<std::string> connect;
    cc::credentials credentials;
    cc::tls_flags tls;
    std::vector<std::string> queues;
    std::size_t concurrency = std::max(1u, std::thread::hardware_concurrency());
    std::size_t prefetch = 1;
    std::optional<std::string> exec, pipe, builtin, handlers;
    double shutdown_timeout_s = 30;
    double connect_timeout_s = 10;
    double status_interval_s = 10;
    std::optional<std::int64_t> soft_grace_ms;
    std::string log_level = "info";
};

po::options_description make_options(worker_flags& f) {
    po::options_description d("conveyor worker options");
    // clang-format off
    d.add_options()
        ("help,h", "print these options and exit")
        ("connect", po::value<std::string>()->value_name("URL"),
         "broker: host:port, redis://[user:password@]host[:port], or rediss://... for TLS "
         "(default $CONVEYOR_URL, else 127.0.0.1:6380)")
        ("user", po::value<std::string>()->value_name("NAME"),
         "user to AUTH as (default: the URL's, else $CONVEYOR_USER)")
        ("password", po::value<std::string>()->value_name("PASSWORD"),
         "password to AUTH with (default: the URL's, else $CONVEYOR_PASSWORD, which keeps it "
         "out of the process list)")
        ("tls", po::bool_switch(&f.tls.tls), "TLS even with a host:port or redis:// address")
        ("tls-ca", po::value<std::string>()->value_name("FILE"),
         "CA certificates (PEM) to verify the broker with "
         "(default $CONVEYOR_TLS_CA, else the system's store)")
        ("tls-cert", po::value<std::string>()->value_name("FILE"),
         "client certificate (PEM), for brokers that require one (default $CONVEYOR_TLS_CERT)")
        ("tls-key", po::value<std::string>()->value_name("FILE"),
         "the client certificate's private key (PEM) (default $CONVEYOR_TLS_KEY)")
        ("tls-server-name", po::value<std::string>()->value_name("NAME"),
         "the name the broker's certificate must carry (default: the host)")
        ("queue", po::value(&f.queues)->value_name("Q"),
         "queue to lease from; repeatable, earlier queues first")
        ("concurrency", po::value(&f.concurrency)->default_value(f.concurrency)->value_name("N"),
         "tasks running at once (default: the number of cores)")
        ("prefetch", po::value(&f.prefetch)->default_value(f.prefetch)->value_name("M"),
         "tasks leased ahead per slot (0: none)")
        ("exec", po::value<std::string>()->value_name("CMD"),
         "run each task as `/bin/sh -c CMD`: payload on stdin, stdout is the result")
        ("pipe", po::value<std::string>()->value_name("CMD"),
         "a pool of --concurrency long-lived handler processes speaking JSON lines")
        ("builtin", po::value<std::string>()->value_name("echo|sleep|fail"),
         "an in-process handler for tests and benchmarks")
        ("handlers", po::value<std::string>()->value_name("FILE"),
         "route task names to exec/pipe/builtin handlers (see conf/)")
        ("shutdown-timeout", po::value<std::string>()->value_name("DURATION"),
         "warm shutdown: how long running tasks may finish before they are stopped and released "
         "(default 30s; a bare number is seconds)")
        ("connect-timeout", po::value<std::string>()->value_name("DURATION"),
         "exit with an error if the broker cannot be reached at start for this long (default "
         "10s; bare: seconds)")
        ("soft-grace-ms", po::value<std::string>()->value_name("DURATION"),
         "soft limit = hard limit - this (default: min(5000, hard / 10); bare: ms)")
        ("status-interval", po::value<std::string>()->value_name("DURATION"),
         "time between status lines (default 10s; bare: seconds; 0: none)")
        ("log-level", po::value(&f.log_level)->default_value(f.log_level)->value_name("LEVEL"),
         "trace, debug, info, warn, error or off");
    // clang-format on
    return d;
}

template <class T>
std::optional<T> opt(const po::variables_map& vm, const char* name) {
    return vm.count(name) ? std::optional<T>(vm[name].as<T>()) : std::nullopt;
}

// The time flags, in the one duration syntax of every flag (protocol/duration.hpp): a bare
// number is seconds, but milliseconds for --soft-grace-ms.
std::optional<std::string> parse_times(const po::variables_map& vm, worker_flags& f) {
    using protocol::bare_unit;
    struct time_flag {
        const char* name;
        bare_unit bare;
        std::optional<std::int64_t> ms;
    };
    time_flag flags[] = {{"shutdown-timeout", bare_unit::seconds, {}},
                         {"connect-timeout", bare_unit::seconds, {}},
                         {"status-interval", bare_unit::seconds, {}},
                         {"soft-grace-ms", bare_unit::milliseconds, {}}};
    for (auto& flag : flags) {
        if (!vm.count(flag.name)) continue;
        const auto text = vm[flag.name].as<std::string>();
        const auto parsed = protocol::parse_duration(text, flag.bare);
        if (parsed.error != protocol::duration_errc::ok)
            return "--" + std::string(flag.name) + ": " +
                   protocol::duration_error_text(text, parsed, flag.bare);
        flag.ms = parsed.ms;
    }
    if (flags[0].ms) f.shutdown_timeout_s = static_cast<double>(*flags[0].ms) / 1000.0;
    if (flags[1].ms) f.connect_timeout_s = static_cast<double>(*flags[1].ms) / 1000.0;
    if (flags[2].ms) f.status_interval_s = static_cast<double>(*flags[2].ms) / 1000.0;
    f.soft_grace_ms = flags[3].ms;
    return std::nullopt;
}

// Parses the flags; on a usage error returns the message (exit 2), on --help "" with help set.
std::optional<std::string> parse_flags(const std::vector<std::string>& args, worker_flags& f,
                                       bool& help) {
    auto options = make_options(f);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(options).run(), vm);
        po::notify(vm);
    } catch (const po::unknown_option& e) {
        // Only the option's name: `--pasword=<secret>` must not print the secret.
        const std::string name = e.get_option_name();
        return "unrecognised option '" + name.substr(0, name.find('=')) + "'";
    } catch (const po::error& e) {
        return std::string(e.what());
    }
    if (vm.count("help")) {
        std::ostringstream out;
        out << usage_line << "\n" << options;
        help = true;
        return out.str();
    }
    f.connect = opt<std::string>(vm, "connect");
    f.credentials = {.user = opt<std::string>(vm, "user"),
                     .password = opt<std::string>(vm, "password")};
    f.tls.ca = opt<std::string>(vm, "tls-ca");
    f.tls.cert = opt<std::string>(vm, "tls-cert");
    f.tls.key = opt<std::string>(vm, "tls-key");
    f.tls.server_name = opt<std::string>(vm, "tls-server-name");
    f.exec = opt<std::string>(vm, "exec");
    f.pipe = opt<std::string>(vm, "pipe");
    f.builtin = opt<std::string>(vm, "builtin");
    f.handlers = opt<std::string>(vm, "handlers");
    if (auto error = parse_times(vm, f)) return error;
    const int kinds = !!f.exec + !!f.pipe + !!f.builtin + !!f.handlers;
    if (f.queues.empty()) return std::string("at least one --queue is needed");
    if (kinds != 1)
        return std::string("exactly one of --exec, --pipe, --builtin, --handlers is needed");
    if (f.builtin && !make_builtin(*f.builtin))
        return "unknown --builtin '" + *f.builtin + "' (echo, sleep or fail)";
    if (f.concurrency == 0) return std::string("--concurrency must be at least 1");
    return std::nullopt;
}

milliseconds seconds(double s) {
    return milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

bool setup_logging(const std::string& level) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") return false;
    spdlog::set_default_logger(spdlog::stderr_color_mt("worker"));
    spdlog::set_level(lvl);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return true;
}

void log_line(cc::worker_log_level level, const std::string& text) {
    switch (level) {
        case cc::worker_log_level::debug:
            spdlog::debug("{}", text);
            break;
        case cc::worker_log_level::info:
            spdlog::info("{}", text);
            break;
        case cc::worker_log_level::warn:
            spdlog::warn("{}", text);
            break;
        case cc::worker_log_level::error:
            spdlog::error("{}", text);
            break;
    }
}

// Registers the handlers the flags name; pools are kept to be shut down at exit. Throws
// (std::runtime_error from the process handlers) when one cannot be set up.
void register_handlers(const worker_flags& f, asio::any_io_executor ex, cc::worker& w,
                       std::vector<std::unique_ptr<pipe_pool>>& pools) {
    if (f.builtin) return w.on_any(make_builtin(*f.builtin));
    if (f.exec) return w.on_any(make_exec_handler(ex, exec_options{.command = *f.exec}));
    if (f.pipe) {
        pools.push_back(make_pipe_pool(ex, pipe_options{*f.pipe, f.concurrency}));
        return w.on_any(pools.back()->handler());
    }
    for (const auto& r : load_handler_file(*f.handlers).routes) {
        cc::task_handler h;
        if (r.kind == "builtin") {
            h = make_builtin(r.command);
            if (!h)
                throw std::runtime_error("unknown builtin '" + r.command + "' for '" + r.name +
                                         "'");
        } else if (r.kind == "exec") {
            h = make_exec_handler(ex, exec_options{.command = r.command});
        } else if (r.kind == "pipe") {
            const auto n = r.concurrency ? r.concurrency : f.concurrency;
            pools.push_back(make_pipe_pool(ex, pipe_options{r.command, n}));
            h = pools.back()->handler();
        } else {
            throw std::runtime_error("unknown handler kind '" + r.kind + "' for '" + r.name + "'");
        }
        cc::route_options ro{.concurrency = r.concurrency, .default_timeout = r.timeout};
        if (r.name == "*")
            w.on_any(std::move(h), ro);
        else
            w.on(r.name, std::move(h), ro);
    }
}

asio::awaitable<void> run_worker(cc::worker& w, std::vector<std::unique_ptr<pipe_pool>>& pools) {
    std::exception_ptr failure;
    try {
        co_await w.run();
    } catch (...) {
        failure = std::current_exception();
    }
    for (auto& p : pools) co_await p->shutdown(milliseconds(2000));
    if (failure) std::rethrow_exception(failure);
}

// The runtime's options from the flags; a message when the URL or TLS flags are unusable.
std::optional<std::string> fill_options(const worker_flags& f, cc::worker_options& o) {
    try {
        o.url = cc::with_credentials(cc::url_or_env(f.connect), f.credentials);
        o.tls = cc::tls_from_flags(o.url, f.tls);
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    o.queues = f.queues;
    o.concurrency = f.concurrency;
    o.prefetch = f.prefetch;
    o.shutdown_timeout = seconds(f.shutdown_timeout_s);
    o.connect_timeout = seconds(f.connect_timeout_s);
    o.status_interval = seconds(f.status_interval_s);
    if (f.soft_grace_ms) o.soft_grace = milliseconds(*f.soft_grace_ms);
    o.log = log_line;
    return std::nullopt;
}

// First SIGTERM/SIGINT: warm shutdown; the second: cold. `received` counts them.
void watch_signals(asio::signal_set& signals, int& received, cc::worker& w,
                   double shutdown_timeout_s) {
    signals.async_wait([&signals, &received, &w, shutdown_timeout_s](
                           const boost::system::error_code& ec, int sig) {
        if (ec) return;
        const char* name = sig == SIGINT ? "SIGINT" : "SIGTERM";
        if (++received == 1) {
            spdlog::info(
                "received {}: warm shutdown (running tasks may finish for {} s; "
                "signal again for a cold shutdown)",
                name, shutdown_timeout_s);
            w.request_shutdown(false);
        } else {
            spdlog::info("received {} again: cold shutdown", name);
            w.request_shutdown(true);
        }
        watch_signals(signals, received, w, shutdown_timeout_s);
    });
}

}  // namespace

int worker_main(const std::vector<std::string>& args) {
    worker_flags f;
    bool help = false;
    if (auto message = parse_flags(args, f, help)) {
        if (help) {
            std::cout << *message;
            return 0;
        }
        std::cerr << "conveyor worker: " << *message << "\n" << usage_line;
        return 2;
    }
    if (!setup_logging(f.log_level)) {
        std::cerr << "conveyor worker: unknown --log-level '" << f.log_level
                  << "' (trace, debug, info, warn, error, critical, off)\n";
        return 2;
    }
    cc::worker_options o;
    if (auto error = fill_options(f, o)) {
        std::cerr << "conveyor worker: " << *error << "\n";
        return 2;
    }

    asio::io_context io(1);
    cc::worker w(io.get_executor(), o);
    std::vector<std::unique_ptr<pipe_pool>> pools;
    try {
        register_handlers(f, io.get_executor(), w, pools);
    } catch (const std::exception& e) {
        std::cerr << "conveyor worker: " << e.what() << "\n";
        return 2;
    }

    asio::signal_set signals(io, SIGINT, SIGTERM);
    int received = 0;
    watch_signals(signals, received, w, f.shutdown_timeout_s);

    int exit_code = 0;
    asio::co_spawn(io, run_worker(w, pools), [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                spdlog::critical("{}", ex.what());
            }
            exit_code = 1;
        } else if (w.undelivered() > 0) {
            exit_code = 1;
        }
        signals.cancel();
        io.stop();  // abandoned handlers may still hold timers
    });
    io.run();
    return exit_code;
}

}  // namespace conveyor::worker

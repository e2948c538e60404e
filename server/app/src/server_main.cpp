#include <conveyor/app/server_main.hpp>

#include <conveyor/amqp/amqp_session.hpp>
#include <conveyor/app/listener.hpp>
#include <conveyor/app/notify.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/config.hpp>
#include <conveyor/runtime/tls.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <conveyor/storage/file_io.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>

#include <filesystem>
#include <iostream>

namespace asio = boost::asio;

namespace conveyor::server {
namespace {

bool setup_logging(const std::string& level) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") return false;
    auto logger = spdlog::stderr_color_mt("conveyor");
    spdlog::set_default_logger(logger);
    spdlog::set_level(lvl);
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
    return true;
}

void log_exception(std::exception_ptr e, const char* what) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::critical("{} failed: {}", what, ex.what());
    }
}

// What to do about a port that could not be opened, naming the flag that chooses it.
std::string listen_hint(const char* flag, const char* what, const boost::system::error_code& ec) {
    const std::string off = std::string(flag) + " 0 turns " + what + " off";
    if (ec == boost::system::errc::address_in_use) {
        return std::string("another process is listening on it: stop it, or start with another ") +
               flag + " (" + off + ")";
    }
    if (ec == boost::system::errc::permission_denied)
        return std::string("ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another ") +
               flag;
    if (ec == boost::system::errc::address_not_available)
        return "--bind must be an address of this machine";
    return "check --bind and " + std::string(flag);
}

// The RESP, TLS and AMQP ports, opened before any is served. A message naming the address,
// the OS reason and the flag to change when one cannot be opened (as redis-server's "Could not
// create server TCP listening socket").
std::optional<std::string> open_ports(const asio::any_io_executor& executor,
                                      broker_service& service, const server_config& config,
                                      tls_server_context* tls, amqp_vhost& amqp,
                                      std::unique_ptr<resp_listener>& resp) {
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(config.bind, ec);
    if (ec) return "--bind '" + config.bind + "' is not an IP address: " + ec.message();
    resp = std::make_unique<resp_listener>(executor, service);
    const char* flag = "--port";
    const char* what = "the RESP port";
    std::uint16_t port = config.port;
    try {
        if (config.port != 0) resp->listen({address, config.port});
        flag = "--tls-port";
        what = "TLS";
        port = config.tls_port;
        if (tls) resp->listen_tls({address, config.tls_port}, *tls);
        flag = "--amqp-port";
        what = "AMQP";
        port = config.amqp_port;
        if (config.amqp_port != 0) resp->listen_amqp({address, config.amqp_port}, amqp);
    } catch (const listen_error& e) {
        const std::string at = address.is_v6() ? "[" + config.bind + "]" : config.bind;
        return "Could not create server TCP listening socket " + at + ":" + std::to_string(port) +
               " (" + flag + "): " + e.what() + "; " + listen_hint(flag, what, e.code);
    }
    return std::nullopt;
}

}  // namespace

// glibc malloc keeps freed memory instead of giving the top of the heap back at every free
// (M_TRIM_THRESHOLD 128 KiB by default, so a drained queue of large payloads was returned and
// its pages faulted in again by the next burst: about a quarter of the broker's time per
// 64 KiB publish). Payloads up to 32 MiB come from the heap (the largest mmap threshold glibc
// would pick by itself). Memory goes back to the system once the broker is quiet
// (broker_service::run_housekeeping, malloc_trim), as jemalloc's decay does for Redis.
static void tune_allocator() {
#if defined(__GLIBC__)
    ::mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
#endif
}

int server_main(const std::vector<std::string>& args) {
    tune_allocator();
    auto parsed = parse_server_args(args);
    if (!parsed.config) {
        (parsed.exit_code == 0 ? std::cout : std::cerr) << parsed.message << "\n";
        return parsed.exit_code;
    }
    const auto& config = *parsed.config;
    if (!setup_logging(config.log_level)) {
        std::cerr << "conveyor server: unknown --log-level '" << config.log_level
                  << "' (trace, debug, info, warn, error, critical, off)\n";
        return 1;
    }
    std::error_code fs_ec;
    std::filesystem::create_directories(config.data_dir, fs_ec);
    if (fs_ec) {
        spdlog::critical("cannot create data directory '{}': {}", config.data_dir, fs_ec.message());
        return 1;
    }

    // One server per data directory: the lock goes away with the process, kill -9 included.
    const std::string lock_path = config.data_dir + "/LOCK";
    const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        spdlog::critical("cannot lock data directory '{}' ({}): {}", config.data_dir, lock_path,
                         errno == EWOULDBLOCK
                             ? "another conveyor server (or conveyor check-data) is using it"
                             : std::strerror(errno));
        return 1;
    }

    // One thread runs everything: sessions, the core and its deadlines (server/THREADING.md).
    asio::io_context io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    storage::posix_file_io disk;
    storage::faulty_file_io faulty_disk(disk);  // used only with --enable-debug-command yes
    const bool debug = config.debug_command;
    broker_service service(io.get_executor(), config);
    if (debug) service.set_debug_io(&faulty_disk);
    // Power-loss tests (docs/reliability.md T2, tests/integration/test_crash_recovery.py): side
    // files say how far each log file was durable at its last fsync.
    if (debug && std::getenv("CONVEYOR_DEBUG_TRACK_SYNCS") != nullptr)
        faulty_disk.track_syncs(true);
    // PBKDF2 password checks run on a thread of their own (server/THREADING.md).
    service.access().verify_off_thread(io.get_executor());
    if (auto error = service.access().load()) {
        spdlog::critical("{}", *error);
        return 1;
    }
    int exit_code = 0;
    // Recovery comes before any listener: no client sees a half-recovered state.
    if (auto error =
            service.open_log(debug ? static_cast<storage::file_io&>(faulty_disk) : disk, [&] {
                // Fail-stop: no reply waiting for the log is sent; the process exits non-zero.
                exit_code = 1;
                io.stop();
            })) {
        spdlog::critical("{}", *error);
        return 1;
    }
    // TLS material is checked before any port opens: bad certificates refuse to start.
    std::unique_ptr<tls_server_context> tls;
    if (config.tls_port != 0) {
        tls = std::make_unique<tls_server_context>(
            tls_settings{config.tls_cert, config.tls_key, config.tls_ca, config.tls_clients});
        if (auto error = tls->load()) {
            spdlog::critical("{}", *error);
            return 1;
        }
    }
    // AMQP's durable exchanges, queues and bindings come back before its port opens.
    amqp_vhost amqp(service);
    if (auto error = amqp.load()) {
        spdlog::critical("{}", *error);
        return 1;
    }
    amqp.drop_exclusive_queues();
    std::unique_ptr<resp_listener> resp;
    if (auto error = open_ports(io.get_executor(), service, config, tls.get(), amqp, resp)) {
        spdlog::critical("{}", *error);
        return 1;
    }

    // SIGHUP re-reads what may change while running (the users file), as Redis and nginx do.
    asio::signal_set hup(io, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_hup =
        [&](const boost::system::error_code& ec, int) {
            if (ec) return;
            spdlog::info("received SIGHUP, reloading");
            service.reload();
            // Blocked commands and AMQP connections of removed or changed users are checked
            // again now rather than at their next request (docs/users.md).
            if (resp) resp->access_changed();
            // New connections get the new certificates; existing ones keep theirs.
            if (tls) {
                if (auto error = tls->load())
                    spdlog::error("TLS reload failed, keeping the previous certificates: {}",
                                  *error);
                else
                    spdlog::info("TLS certificates reloaded");
            }
            hup.async_wait(on_hup);
        };
    hup.async_wait(on_hup);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    asio::steady_timer grace(io);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        if (resp) resp->stop();
        amqp.stop();
        hup.cancel();
        service.stop();
        // Sessions end on their next turn; wait for them (at most 2 s), then stop.
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (int i = 0; i < 200 && resp && resp->session_count() > 0; ++i) {
                    grace.expires_after(std::chrono::milliseconds(10));
                    co_await grace.async_wait(asio::use_awaitable);
                }
                io.stop();
            },
            [](std::exception_ptr e) { log_exception(e, "shutdown"); });
    });
    // Fail-stop, as a failed fsync: without its loops the broker would serve on with leases
    // that never expire or a log that is never synced. Every acknowledged change is in the
    // log already; a restart recovers it.
    const auto fail_stop = [&](const char* what) {
        return [&, what](std::exception_ptr e) {
            if (!e) return;
            log_exception(e, what);
            spdlog::critical("the {} stopped; stopping the server: restart to recover", what);
            exit_code = 1;
            io.stop();
        };
    };
    if (resp) asio::co_spawn(io, resp->run(), fail_stop("listener"));
    asio::co_spawn(io, amqp.run_expiry(), fail_stop("amqp queue expiry"));
    asio::co_spawn(io, service.run_deadlines(), fail_stop("deadline loop"));
    asio::co_spawn(io, service.run_housekeeping(), fail_stop("housekeeping loop"));

    const auto port_text = [&](std::optional<asio::ip::tcp::endpoint> at) {
        return at ? config.bind + ":" + std::to_string(at->port()) : std::string("off");
    };
    spdlog::info("conveyor {} started: resp {}, tls {}, amqp {}, data dir {} (fsync {}), pid {}",
                 CONVEYOR_VERSION, port_text(resp->plain_endpoint()),
                 port_text(resp->tls_endpoint()), port_text(resp->amqp_endpoint()), config.data_dir,
                 config.fsync, static_cast<long>(::getpid()));
    const service_readiness readiness;  // READY=1 to systemd now, STOPPING=1 on return
    // io.run(), with a hook before each wait: run one handler (blocking), then everything
    // that became ready meanwhile, then hand this round's records to the log. A round also
    // ends once it has appended round_limit_bytes: a client streaming large messages keeps
    // handlers ready forever, and its records (and every reply behind them) would otherwise
    // wait in one ever-growing batch.
    while (!io.stopped()) {
        io.run_one();
        while (!service.round_full() && io.poll_one() > 0) {
        }
        service.before_sleep();
    }
    if (exit_code == 0) {
        service.close_log();
        spdlog::info("conveyor stopped");
    }
    return exit_code;
}

}  // namespace conveyor::server

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

namespace {

// One data directory per server: the lock goes away with the process, kill -9 included.
std::optional<std::string> lock_data_dir(const server_config& config) {
    std::error_code fs_ec;
    std::filesystem::create_directories(config.data_dir, fs_ec);
    if (fs_ec) {
        return "cannot create data directory '" + config.data_dir + "': " + fs_ec.message();
    }
    const std::string lock_path = config.data_dir + "/LOCK";
    const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        return "cannot lock data directory '" + config.data_dir + "' (" + lock_path + "): " +
               (errno == EWOULDBLOCK
                    ? "another conveyor server (or conveyor check-data) is using it"
                    : std::strerror(errno));
    }
    return std::nullopt;  // the descriptor stays open (and locked) until the process ends
}

// The server from recovery to shutdown, on one thread that runs everything: sessions, the
// core and its deadlines (server/THREADING.md).
class server_run {
public:
    explicit server_run(const server_config& config)
        : config_(config),
          faulty_disk_(disk_),  // used only with --enable-debug-command yes
          service_(io_.get_executor(), config),
          amqp_(service_),
          grace_(io_) {}

    // Recovery, TLS material and the AMQP topology, then the ports: a message when the
    // server cannot start.
    std::optional<std::string> start() {
        const bool debug = config_.debug_command;
        if (debug) service_.set_debug_io(&faulty_disk_);
        // Power-loss tests (docs/reliability.md T2, tests/integration/test_crash_recovery.py):
        // side files say how far each log file was durable at its last fsync.
        if (debug && std::getenv("CONVEYOR_DEBUG_TRACK_SYNCS") != nullptr)
            faulty_disk_.track_syncs(true);
        // PBKDF2 password checks run on a thread of their own (server/THREADING.md).
        service_.access().verify_off_thread(io_.get_executor());
        if (auto error = service_.access().load()) return error;
        // Recovery comes before any listener: no client sees a half-recovered state.
        storage::file_io& io = debug ? static_cast<storage::file_io&>(faulty_disk_) : disk_;
        if (auto error = service_.open_log(io, [this] {
                // Fail-stop: no reply waiting for the log is sent; the process exits non-zero.
                exit_code_ = 1;
                io_.stop();
            })) {
            return error;
        }
        // TLS material is checked before any port opens: bad certificates refuse to start.
        if (config_.tls_port != 0) {
            tls_ = std::make_unique<tls_server_context>(tls_settings{
                config_.tls_cert, config_.tls_key, config_.tls_ca, config_.tls_clients});
            if (auto error = tls_->load()) return error;
        }
        // AMQP's durable exchanges, queues and bindings come back before its port opens.
        if (auto error = amqp_.load()) return error;
        amqp_.drop_exclusive_queues();
        return open_ports(io_.get_executor(), service_, config_, tls_.get(), amqp_, resp_);
    }

    // Serves until SIGINT/SIGTERM or a fail-stop; the process's exit status.
    int serve() {
        watch_signals();
        spawn_loops();
        log_started();
        const service_readiness readiness;  // READY=1 to systemd now, STOPPING=1 on return
        // io.run(), with a hook before each wait: run one handler (blocking), then everything
        // that became ready meanwhile, then hand this round's records to the log. A round
        // also ends once it has appended round_limit_bytes: a client streaming large messages
        // keeps handlers ready forever, and its records (and every reply behind them) would
        // otherwise wait in one ever-growing batch.
        while (!io_.stopped()) {
            io_.run_one();
            while (!service_.round_full() && io_.poll_one() > 0) {
            }
            service_.before_sleep();
        }
        if (exit_code_ == 0) {
            service_.close_log();
            spdlog::info("conveyor stopped");
        }
        return exit_code_;
    }

private:
    // SIGHUP re-reads what may change while running (the users file), as Redis and nginx do.
    void on_hup(const boost::system::error_code& ec) {
        if (ec) return;
        spdlog::info("received SIGHUP, reloading");
        service_.reload();
        // Blocked commands and AMQP connections of removed or changed users are checked again
        // now rather than at their next request (docs/users.md).
        if (resp_) resp_->access_changed();
        // New connections get the new certificates; existing ones keep theirs.
        if (tls_) {
            if (auto error = tls_->load())
                spdlog::error("TLS reload failed, keeping the previous certificates: {}", *error);
            else
                spdlog::info("TLS certificates reloaded");
        }
        hup_->async_wait([this](const boost::system::error_code& e, int) { on_hup(e); });
    }

    // Installed once the server serves: until then SIGINT/SIGTERM/SIGHUP keep their default
    // action (a signal during recovery ends the process at once).
    void watch_signals() {
        hup_.emplace(io_, SIGHUP);
        signals_.emplace(io_, SIGINT, SIGTERM);
        hup_->async_wait([this](const boost::system::error_code& e, int) { on_hup(e); });
        signals_->async_wait([this](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
            if (resp_) resp_->stop();
            amqp_.stop();
            hup_->cancel();
            service_.stop();
            // Sessions end on their next turn; wait for them (at most 2 s), then stop.
            asio::co_spawn(io_, wait_for_sessions(),
                           [](std::exception_ptr e) { log_exception(e, "shutdown"); });
        });
    }

    asio::awaitable<void> wait_for_sessions() {
        for (int i = 0; i < 200 && resp_ && resp_->session_count() > 0; ++i) {
            grace_.expires_after(std::chrono::milliseconds(10));
            co_await grace_.async_wait(asio::use_awaitable);
        }
        io_.stop();
    }

    // Fail-stop, as a failed fsync: without its loops the broker would serve on with leases
    // that never expire or a log that is never synced. Every acknowledged change is in the
    // log already; a restart recovers it.
    std::function<void(std::exception_ptr)> fail_stop(const char* what) {
        return [this, what](std::exception_ptr e) {
            if (!e) return;
            log_exception(e, what);
            spdlog::critical("the {} stopped; stopping the server: restart to recover", what);
            exit_code_ = 1;
            io_.stop();
        };
    }

    void spawn_loops() {
        if (resp_) asio::co_spawn(io_, resp_->run(), fail_stop("listener"));
        asio::co_spawn(io_, amqp_.run_expiry(), fail_stop("amqp queue expiry"));
        asio::co_spawn(io_, service_.run_deadlines(), fail_stop("deadline loop"));
        asio::co_spawn(io_, service_.run_housekeeping(), fail_stop("housekeeping loop"));
    }

    void log_started() const {
        const auto port_text = [&](std::optional<asio::ip::tcp::endpoint> at) {
            return at ? config_.bind + ":" + std::to_string(at->port()) : std::string("off");
        };
        spdlog::info(
            "conveyor {} started: resp {}, tls {}, amqp {}, data dir {} (fsync {}), pid {}",
            CONVEYOR_VERSION, port_text(resp_->plain_endpoint()), port_text(resp_->tls_endpoint()),
            port_text(resp_->amqp_endpoint()), config_.data_dir, config_.fsync,
            static_cast<long>(::getpid()));
    }

    const server_config& config_;
    asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    storage::posix_file_io disk_;
    storage::faulty_file_io faulty_disk_;
    broker_service service_;
    std::unique_ptr<tls_server_context> tls_;
    amqp_vhost amqp_;
    std::unique_ptr<resp_listener> resp_;
    std::optional<asio::signal_set> hup_;
    std::optional<asio::signal_set> signals_;
    asio::steady_timer grace_;
    int exit_code_ = 0;
};

}  // namespace

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
    if (auto error = lock_data_dir(config)) {
        spdlog::critical("{}", *error);
        return 1;
    }
    server_run server(config);
    if (auto error = server.start()) {
        spdlog::critical("{}", *error);
        return 1;
    }
    return server.serve();
}

}  // namespace conveyor::server

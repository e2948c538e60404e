#include <conveyor/app/listener.hpp>

#include <conveyor/amqp/amqp_session.hpp>
#include <conveyor/resp/resp_session.hpp>
#include <conveyor/runtime/tls.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace conveyor::server {
namespace {

constexpr std::size_t reserved_fds = 32;
constexpr std::string_view max_clients_reply = "-ERR max number of clients reached\r\n";

void log_exception(std::exception_ptr e, const char* what) {
    if (!e) return;
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        spdlog::error("{}: {}", what, ex.what());
    }
}

}  // namespace

std::size_t raise_open_files_limit(std::size_t max_clients) {
    const rlim_t wanted = static_cast<rlim_t>(max_clients + reserved_fds);
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        spdlog::warn("cannot read the open-files limit: {}", std::strerror(errno));
        return max_clients;
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
        rlimit raised = lim;
        raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, lim.rlim_max);
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            lim = raised;
        } else {
            spdlog::warn("cannot raise the open-files limit from {} to {}: {}", lim.rlim_cur,
                         raised.rlim_cur, std::strerror(errno));
        }
    }
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < wanted) {
        const std::size_t fit = lim.rlim_cur > reserved_fds + 1
                                    ? static_cast<std::size_t>(lim.rlim_cur) - reserved_fds
                                    : 1;
        spdlog::warn(
            "--max-clients {} needs {} open files, but the limit is {} (hard limit {}): at most "
            "{} clients; raise it with `ulimit -n` or LimitNOFILE=",
            max_clients, wanted, lim.rlim_cur, lim.rlim_max, fit);
        return fit;
    }
    return max_clients;
}

resp_listener::resp_listener(asio::any_io_executor executor, broker_service& service)
    : executor_(std::move(executor)),
      service_(service),
      max_clients_(raise_open_files_limit(static_cast<std::size_t>(service.config().max_clients))),
      sweep_timer_(executor_) {}

void resp_listener::listen(const tcp::endpoint& at) {
    auto p = std::make_unique<port>(port{tcp::acceptor(executor_), nullptr});
    boost::system::error_code ec;
    const char* step = "socket";
    p->acceptor.open(at.protocol(), ec);
    if (!ec) {
        step = "setsockopt";
        p->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
        step = "bind";
        p->acceptor.bind(at, ec);
    }
    if (!ec) {
        step = "listen";
        p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) throw listen_error(std::string(step) + ": " + ec.message(), ec);
    ports_.push_back(std::move(p));
}

void resp_listener::listen_tls(const tcp::endpoint& at, tls_server_context& tls) {
    listen(at);
    ports_.back()->tls = &tls;
}

void resp_listener::listen_amqp(const tcp::endpoint& at, amqp_vhost& vhost) {
    listen(at);
    ports_.back()->amqp = &vhost;
}

std::optional<tcp::endpoint> resp_listener::amqp_endpoint() const {
    for (const auto& p : ports_)
        if (p->amqp) return p->acceptor.local_endpoint();
    return std::nullopt;
}

std::optional<tcp::endpoint> resp_listener::plain_endpoint() const {
    for (const auto& p : ports_)
        if (!p->tls && !p->amqp) return p->acceptor.local_endpoint();
    return std::nullopt;
}

std::optional<tcp::endpoint> resp_listener::tls_endpoint() const {
    for (const auto& p : ports_)
        if (p->tls) return p->acceptor.local_endpoint();
    return std::nullopt;
}

asio::awaitable<void> resp_listener::run() {
    for (auto& p : ports_) {
        asio::co_spawn(executor_, accept_loop(*p),
                       [](std::exception_ptr e) { log_exception(e, "listener failed"); });
    }
    if (service_.config().idle_timeout_ms > 0) co_await sweep_idle();
}

asio::awaitable<void> resp_listener::accept_loop(port& p) {
    while (p.acceptor.is_open()) {
        auto [ec, socket] = co_await p.acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || !p.acceptor.is_open()) break;
        if (ec) {
            // EMFILE and friends: refuse this one, keep serving the others.
            ++service_.counters().rejected_connections;
            spdlog::warn("accept failed: {}", ec.message());
            continue;
        }
        ++service_.counters().connections_received;
        if (sessions_.size() >= max_clients_) {
            refuse(socket, p);
            continue;
        }
        if (!set_tcp_keepalive(socket, service_.config().tcp_keepalive))
            spdlog::warn("cannot set TCP keepalive on a client connection: {}",
                         std::strerror(errno));
        start_session(std::move(socket), p);
    }
}

// --max-clients: as Redis, one error line and the connection closes. On the TLS port the
// line cannot be sent before a handshake, so the connection just closes.
void resp_listener::refuse(tcp::socket& socket, const port& p) {
    ++service_.counters().rejected_connections;
    boost::system::error_code ignored;
    if (!p.tls && !p.amqp) {
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(max_clients_reply.data(), max_clients_reply.size()),
                          ignored);
    }
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    // One line per 10 s at most: a flood of refusals must not flood the log too.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_refusal_log_ >= std::chrono::seconds(10)) {
        last_refusal_log_ = now;
        spdlog::warn("max number of clients reached ({}): refusing new connections", max_clients_);
    }
}

void resp_listener::start_session(tcp::socket socket, const port& p) {
    if (p.amqp) {
        auto session =
            std::make_shared<amqp_session>(std::move(socket), *p.amqp, next_client_id_++);
        sessions_.insert(session);
        asio::co_spawn(executor_, session->run(), [this, session](std::exception_ptr e) {
            sessions_.erase(session);
            log_exception(e, "amqp session ended");
        });
        return;
    }
    auto session = std::make_shared<resp_session>(std::move(socket), service_, next_client_id_++,
                                                  p.tls ? p.tls->current() : nullptr);
    sessions_.insert(session);
    // Not `detached`: the completion handler logs an unexpected error and ends only this
    // session, and removes it from the live set either way.
    asio::co_spawn(executor_, session->run(), [this, session](std::exception_ptr e) {
        sessions_.erase(session);
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            spdlog::error("client session ended: {}", ex.what());
        }
    });
}

// --idle-timeout: a client that sent no request for that long is closed, unless it is blocked
// (waiting is what it asked for). Checked a few times per timeout, at least once a second.
asio::awaitable<void> resp_listener::sweep_idle() {
    const auto timeout_ms = service_.config().idle_timeout_ms;
    const auto period =
        std::chrono::milliseconds(std::clamp<std::int64_t>(timeout_ms / 4, 10, 1000));
    while (!stopped_) {
        sweep_timer_.expires_after(period);
        auto [ec] = co_await sweep_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || stopped_) break;
        const auto now_us = service_.now().mono_us;
        for (const auto& s : sessions_) {
            if (!s->idle_longer_than(now_us, timeout_ms * 1000)) continue;
            spdlog::info("client {} ({}): no request for {} ms (--idle-timeout); closing",
                         s->client().id, s->client().peer, timeout_ms);
            s->close();
        }
    }
}

void resp_listener::access_changed() {
    // A copy: a session may end (and leave the set) from inside its re-check.
    const std::vector<std::shared_ptr<server_session>> sessions(sessions_.begin(), sessions_.end());
    for (const auto& s : sessions) s->access_changed();
}

void resp_listener::stop() {
    stopped_ = true;
    boost::system::error_code ignored;
    for (auto& p : ports_) p->acceptor.close(ignored);
    sweep_timer_.cancel();
    for (const auto& s : sessions_) s->close();
}

}  // namespace conveyor::server

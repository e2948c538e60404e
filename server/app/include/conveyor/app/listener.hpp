// Accepts RESP connections on the plain and TLS ports, and AMQP ones on the AMQP port, and runs a
// session per connection. Keeps the set of live sessions (both ports together), so that
// --max-clients counts every connection, the idle sweep (--idle-timeout) can find idle ones, and
// shutdown can end them all and wait for them to finish.
#pragma once

#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/session.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace conveyor::server {

class amqp_vhost;
class tls_server_context;

// A port that could not be opened: what() is the step and the OS reason ("bind: Address
// already in use"), without Boost's source location.
struct listen_error : std::runtime_error {
    listen_error(const std::string& what, boost::system::error_code ec)
        : std::runtime_error(what), code(ec) {}
    boost::system::error_code code;
};

class resp_listener {
public:
    // Raises the open-files limit for --max-clients (see raise_open_files_limit).
    resp_listener(boost::asio::any_io_executor executor, broker_service& service);

    // Bind at once so that a busy port is reported at start (throws listen_error).
    void listen(const boost::asio::ip::tcp::endpoint& at);
    // `tls` must outlive the listener; each connection takes the context current at accept.
    void listen_tls(const boost::asio::ip::tcp::endpoint& at, tls_server_context& tls);
    // AMQP 0-9-1 (docs/amqp.md); `vhost` must outlive the listener.
    void listen_amqp(const boost::asio::ip::tcp::endpoint& at, amqp_vhost& vhost);

    std::optional<boost::asio::ip::tcp::endpoint> plain_endpoint() const;
    std::optional<boost::asio::ip::tcp::endpoint> tls_endpoint() const;
    std::optional<boost::asio::ip::tcp::endpoint> amqp_endpoint() const;
    // Accepts on every port (and sweeps idle clients) until stop().
    boost::asio::awaitable<void> run();
    // Stops accepting and closes every session; they finish on their own executor turns.
    void stop();
    std::size_t session_count() const noexcept { return sessions_.size(); }
    // After a reload of the users file: every session re-checks its user (access_changed).
    void access_changed();
    std::size_t max_clients() const noexcept { return max_clients_; }

private:
    struct port {
        boost::asio::ip::tcp::acceptor acceptor;
        tls_server_context* tls = nullptr;
        amqp_vhost* amqp = nullptr;  // set: an AMQP port
    };

    boost::asio::awaitable<void> accept_loop(port& p);
    boost::asio::awaitable<void> sweep_idle();
    void refuse(boost::asio::ip::tcp::socket& socket, const port& p);
    void start_session(boost::asio::ip::tcp::socket socket, const port& p);

    boost::asio::any_io_executor executor_;
    broker_service& service_;
    std::vector<std::unique_ptr<port>> ports_;
    std::unordered_set<std::shared_ptr<server_session>> sessions_;
    std::uint64_t next_client_id_ = 1;
    std::size_t max_clients_;
    boost::asio::steady_timer sweep_timer_;
    std::chrono::steady_clock::time_point last_refusal_log_{};
    bool stopped_ = false;
};

// Raises RLIMIT_NOFILE's soft limit toward the hard limit so that `max_clients` connections
// fit with 32 descriptors to spare (the log, listeners, stdio), as Redis does at start.
// Returns how many clients fit: `max_clients`, or fewer (logged) when the limit cannot be
// raised enough.
std::size_t raise_open_files_limit(std::size_t max_clients);

}  // namespace conveyor::server

// Accepts connections on one endpoint and runs a session per connection. Keeps the set of
// live sessions so that shutdown can end them all and wait for them to finish.
#pragma once

#include "net/broker_service.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>
#include <unordered_set>

namespace conveyor::server {

class resp_session;

class resp_listener {
public:
    // Binds at once so that a busy port is reported at start (throws boost::system_error).
    resp_listener(boost::asio::any_io_executor executor, const boost::asio::ip::tcp::endpoint& at,
                  broker_service& service);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    boost::asio::awaitable<void> run();
    // Stops accepting and closes every session; they finish on their own executor turns.
    void stop();
    std::size_t session_count() const noexcept { return sessions_.size(); }

private:
    boost::asio::ip::tcp::acceptor acceptor_;
    broker_service& service_;
    std::unordered_set<std::shared_ptr<resp_session>> sessions_;
    std::uint64_t next_client_id_ = 1;
};

}  // namespace conveyor::server

#include "net/listener.hpp"

#include "net/resp_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace conveyor::server {

resp_listener::resp_listener(asio::any_io_executor executor, const tcp::endpoint& at,
                             broker_service& service)
    : acceptor_(executor), service_(service) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

asio::awaitable<void> resp_listener::run() {
    while (acceptor_.is_open()) {
        auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
        if (ec) {
            // EMFILE and friends: refuse this one, keep serving the others.
            ++service_.counters().rejected_connections;
            spdlog::warn("accept failed: {}", ec.message());
            continue;
        }
        ++service_.counters().connections_received;
        auto session =
            std::make_shared<resp_session>(std::move(socket), service_, next_client_id_++);
        sessions_.insert(session);
        // Not `detached`: the completion handler logs an unexpected error and ends only this
        // session, and removes it from the live set either way.
        asio::co_spawn(acceptor_.get_executor(), session->run(),
                       [this, session](std::exception_ptr e) {
                           sessions_.erase(session);
                           if (!e) return;
                           try {
                               std::rethrow_exception(e);
                           } catch (const std::exception& ex) {
                               spdlog::error("client session ended: {}", ex.what());
                           }
                       });
    }
}

void resp_listener::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (const auto& s : sessions_) s->close();
}

}  // namespace conveyor::server

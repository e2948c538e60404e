// One RESP client connection. Reads bytes, feeds the sans-IO decoder, runs each complete
// request in order through the command table, and writes the replies of a whole pipelined
// batch in one write. A blocking command (LEASE BLOCK, BLPOP, RESULT WAIT) parks only this
// connection: the session stops running its requests but keeps watching the socket, so a
// client that goes away while blocked gives up its place (and never receives a task it can
// no longer see).
#pragma once

#include "net/broker_service.hpp"
#include "net/commands.hpp"

#include <conveyor/protocol/resp_decoder.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <string>
#include <vector>

namespace conveyor::server {

class resp_session final : public waiting_client,
                           public std::enable_shared_from_this<resp_session> {
public:
    resp_session(boost::asio::ip::tcp::socket socket, broker_service& service, std::uint64_t id);

    // Serves the connection until the peer leaves, QUIT, a protocol error, or close().
    boost::asio::awaitable<void> run();
    // Ends the session from outside (shutdown): pending reads and waits are cancelled.
    void close();

private:
    enum class step : std::uint8_t { read, more, blocked, close };

    step run_buffered_requests();
    boost::asio::awaitable<bool> flush();
    boost::asio::awaitable<void> wait_while_blocked();
    bool read_available();
    void compact_input();

    void on_leased(std::span<const core::leased_task> tasks) override;
    void on_popped(std::string_view queue, std::string_view payload) override;
    void on_result(const core::task_view& task) override;
    void unblocked();

    boost::asio::ip::tcp::socket socket_;
    broker_service& service_;
    protocol::resp_request_decoder decoder_;
    std::string in_;
    std::size_t in_pos_ = 0;
    std::string out_;
    std::string writing_;
    protocol::resp_writer writer_;
    std::vector<std::string> args_;
    client_state client_;
    std::optional<block_request> block_;
    boost::asio::steady_timer wake_;
    bool closing_ = false;
};

}  // namespace conveyor::server

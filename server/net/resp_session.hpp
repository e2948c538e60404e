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
#include <span>
#include <string>
#include <vector>

namespace conveyor::server {

// Bytes read but not yet decoded. Unlike std::string it never zero-fills the space a read is
// about to overwrite (16 KiB per read would otherwise be cleared for nothing).
class input_buffer {
public:
    std::string_view pending() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    void consume(std::size_t n) noexcept { begin_ += n; }
    // Room for at least `n` more bytes at the end; moves pending bytes to the front first.
    std::span<char> prepare(std::size_t n);
    void commit(std::size_t n) noexcept { end_ += n; }

private:
    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

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

    boost::asio::awaitable<void> serve();
    void end_session();
    step run_buffered_requests();
    boost::asio::awaitable<bool> flush();
    boost::asio::awaitable<void> wait_while_blocked();
    bool read_available();

    void on_leased(std::span<const core::leased_task> tasks) override;
    void on_popped(std::string_view queue, std::string_view payload) override;
    void on_result(const core::task_view& task) override;
    void unblocked();

    boost::asio::ip::tcp::socket socket_;
    broker_service& service_;
    protocol::resp_request_decoder decoder_;
    input_buffer in_;
    std::string out_;
    std::string writing_;
    protocol::resp_writer writer_;
    std::vector<std::string> args_;
    client_state client_;
    std::optional<block_request> block_;
    boost::asio::steady_timer wake_;
    boost::asio::steady_timer released_;  // parked here until the log releases a reply
    bool closing_ = false;
};

}  // namespace conveyor::server

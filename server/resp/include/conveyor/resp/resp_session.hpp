// One RESP client connection, over plain TCP or TLS. Two coroutines share it:
// - the reader reads bytes, feeds the sans-IO decoder and runs each complete request in order
//   through the command table, appending the replies to the output buffer;
// - the writer sends the output buffer once the log has released what the replies depend on.
// The reader keeps running requests while a write is in flight, so a client that never reads
// makes its output grow; past --output-buffer-limit it is disconnected and the leases granted
// through it are released. On plain TCP the reader writes a batch itself when the writer is
// idle and the log has nothing to wait for (one write_some, no round through the executor).
// A blocking command (LEASE BLOCK, BLPOP, RESULT WAIT) parks only this connection: the reader
// stops running requests but keeps watching the socket, so a client that goes away while
// blocked gives up its place (and never receives a task it can no longer see).
#pragma once

#include <conveyor/resp/commands.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/input_buffer.hpp>
#include <conveyor/runtime/session.hpp>

#include <conveyor/protocol/resp_decoder.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace conveyor::server {

class resp_session final : public resp_waiter,
                           public server_session,
                           public std::enable_shared_from_this<resp_session> {
public:
    // `tls`: the context of a TLS connection (the handshake runs first); null for plain TCP.
    resp_session(boost::asio::ip::tcp::socket socket, broker_service& service, std::uint64_t id,
                 std::shared_ptr<boost::asio::ssl::context> tls = nullptr);

    // Serves the connection until the peer leaves, QUIT, a protocol error, or close().
    boost::asio::awaitable<void> run();
    // Ends the session from outside (shutdown, idle timeout): pending reads, writes and waits
    // are cancelled; unwritten replies are dropped.
    void close() override;
    // For the idle timeout: no request for `timeout_us` (core monotonic time) and not blocked.
    bool idle_longer_than(std::int64_t now_mono_us,
                          std::int64_t timeout_us) const noexcept override;
    const client_state& client() const noexcept override { return client_; }
    // A blocked command whose user was removed gets -NOAUTH, one no longer permitted -NOPERM.
    void access_changed() override;

private:
    enum class step : std::uint8_t { read, more, blocked, close };

    boost::asio::awaitable<bool> handshake();
    boost::asio::awaitable<void> serve();
    boost::asio::awaitable<void> write_loop();
    boost::asio::awaitable<bool> write_pending();
    void end_session();
    step run_buffered_requests();
    void after_command();
    void use_limits_for_client();
    void hand_off_output();
    void wake_writer();
    void output_overflowed();
    boost::asio::awaitable<void> wait_while_blocked();
    bool read_available();

    void on_leased(std::span<const core::leased_task> tasks) override;
    void on_popped(std::string_view queue, std::string_view payload) override;
    void on_result(const core::task_view& task) override;
    void on_deferred(const deferred_reply& finish) override;
    void unblocked();

    boost::asio::ip::tcp::socket socket_;
    std::shared_ptr<boost::asio::ssl::context> tls_context_;
    std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
    broker_service& service_;
    protocol::resp_limits limits_;      // after authentication
    bool limits_authenticated_ = true;  // which limits the decoder has
    protocol::resp_request_decoder decoder_;
    input_buffer in_;
    std::string out_;           // replies not yet handed to a write
    std::string writing_;       // the replies of the write in flight
    std::size_t output_limit_;  // 0: none
    protocol::resp_writer writer_;
    std::vector<std::string> args_;
    client_state client_;
    std::optional<block_request> block_;
    boost::asio::steady_timer wake_;         // the reader, while blocked
    boost::asio::steady_timer writer_wake_;  // the writer, while it has nothing to write
    boost::asio::steady_timer released_;     // the writer, until the log releases a reply
    std::int64_t last_request_us_ = 0;       // core monotonic time of the latest request
    bool writer_busy_ = false;  // the writer holds bytes (waiting for the log or writing)
    bool reader_done_ = false;  // no more replies: the writer sends what is left and ends
    bool handshake_done_ = false;
    bool handshake_timed_out_ = false;
    bool closing_ = false;  // abort: nothing more is read or written
};

}  // namespace conveyor::server

#include <conveyor/resp/resp_session.hpp>

#include <conveyor/runtime/log_limiter.hpp>
#include <conveyor/runtime/log_text.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;

namespace conveyor::server {
namespace {

// Bytes read per read call, and the most unprocessed input kept while a command is blocked
// (beyond it the session stops reading until it is unblocked: back-pressure on the peer).
constexpr std::size_t read_chunk = 16 * 1024;
constexpr std::size_t max_input_while_blocked = 1024 * 1024;
// A batch hands its replies to the writer once it has produced this much, so a long pipeline
// of large replies starts going out before the whole input is processed.
constexpr std::size_t flush_threshold = 64 * 1024;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

protocol::resp_limits limits_for(const server_config& config) {
    protocol::resp_limits limits;
    limits.max_bulk_len = static_cast<std::size_t>(config.max_payload);
    limits.max_args = static_cast<std::size_t>(config.max_args);
    limits.max_request_bytes = static_cast<std::size_t>(config.query_buffer_limit);
    return limits;
}

bool would_block(const boost::system::error_code& ec) {
    return ec == asio::error::would_block || ec == asio::error::try_again;
}

// ACK, FAIL and RELEASE end the lease named by their first argument.
bool ends_lease(std::string_view command) {
    return iequals(command, "ack") || iequals(command, "fail") || iequals(command, "release");
}

}  // namespace

resp_session::resp_session(tcp::socket socket, broker_service& service, std::uint64_t id,
                           std::shared_ptr<ssl::context> tls)
    : socket_(std::move(socket)),
      tls_context_(std::move(tls)),
      service_(service),
      limits_(limits_for(service.config())),
      decoder_(limits_),
      output_limit_(static_cast<std::size_t>(service.config().output_buffer_limit)),
      writer_(out_, protocol::resp_version::resp2),
      wake_(socket_.get_executor()),
      writer_wake_(socket_.get_executor()),
      released_(socket_.get_executor()),
      last_request_us_(service.now().mono_us) {
    client_.id = id;
    describe_peer(socket_, client_);
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    // Synchronous reads and writes (read_available, hand_off_output) must never block the
    // broker's only thread.
    socket_.non_blocking(true, ec);
    if (tls_context_) tls_.emplace(socket_, *tls_context_);
}

asio::awaitable<void> resp_session::run() {
    using namespace asio::experimental::awaitable_operators;
    ++service_.counters().connected_clients;
    if (tls_ && !co_await handshake()) {
        end_session();
        co_return;
    }
    if (auto refusal = service_.admit(client_)) {
        // Protected mode and the like: one error line, then the connection closes.
        out_ = "-" + *refusal + "\r\n";
        reader_done_ = true;
        co_await write_loop();
        end_session();
        co_return;
    }
    use_limits_for_client();
    // An unexpected exception ends only this session, but its waiter must not outlive it:
    // the core would hand a task to a session that no longer exists. (Not a destructor:
    // frames destroyed at a forced shutdown must not touch the service, which is gone.)
    try {
        co_await (serve() && write_loop());
    } catch (...) {
        end_session();
        throw;
    }
    end_session();
}

// The TLS handshake, bounded by --handshake-timeout. False when it failed (a plaintext client
// on the TLS port, no or a bad client certificate, TLS below 1.2) or took too long.
asio::awaitable<bool> resp_session::handshake() {
    using namespace asio::experimental::awaitable_operators;
    const auto timeout = std::chrono::milliseconds(service_.config().handshake_timeout_ms);
    // The deadline cancels the socket's operations rather than racing the handshake with
    // `||`: cancelling the socket ends the handshake whatever step it is in.
    wake_.expires_after(timeout);
    wake_.async_wait([this, self = shared_from_this()](boost::system::error_code ec) {
        if (ec || handshake_done_) return;
        handshake_timed_out_ = true;
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    });
    auto [ec] = co_await tls_->async_handshake(ssl::stream_base::server, use_tuple);
    handshake_done_ = !ec;
    wake_.cancel();
    if (handshake_timed_out_) {
        client_log(spdlog::level::info, client_.peer,
                   "client {} ({}): TLS handshake not done within {} ms; closing", client_.id,
                   client_.peer, timeout.count());
        co_return false;
    }
    if (ec) {
        if (!closing_) {
            client_log(spdlog::level::info, client_.peer,
                       "client {} ({}): TLS handshake failed: {}; closing", client_.id,
                       client_.peer, ec.message());
        }
        co_return false;
    }
    co_return !closing_;
}

// The reader.
asio::awaitable<void> resp_session::serve() {
    while (true) {
        auto next = run_buffered_requests();
        service_.deadlines_changed();
        hand_off_output();
        if (next == step::close || closing_) break;
        if (next == step::blocked) {
            co_await wait_while_blocked();
            continue;
        }
        if (next == step::more) continue;

        auto room = in_.prepare(read_chunk);
        auto buffer = asio::buffer(room.data(), room.size());
        auto [ec, n] = tls_ ? co_await tls_->async_read_some(buffer, use_tuple)
                            : co_await socket_.async_read_some(buffer, use_tuple);
        in_.commit(n);
        // eof, reset, TLS truncation, cancelled: the peer is gone or we are shutting down.
        if (ec) break;
    }
    // What is left in the output (a protocol error's reply, QUIT's +OK) still goes out.
    reader_done_ = true;
    wake_writer();
}

void resp_session::end_session() {
    if (block_) service_.forget_waiter(block_->waiter);
    block_.reset();
    --service_.counters().connected_clients;
    boost::system::error_code ignored;
    if (tls_ && handshake_done_ && !closing_) tls_->shutdown(ignored);  // close_notify, if it fits
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

void resp_session::close() {
    closing_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    wake_.cancel();
    writer_wake_.cancel();
    released_.cancel();
}

bool resp_session::idle_longer_than(std::int64_t now_mono_us,
                                    std::int64_t timeout_us) const noexcept {
    return !block_ && !closing_ && now_mono_us - last_request_us_ >= timeout_us;
}

// Runs complete requests from the input buffer, in order, until the input is used up, the
// output is large enough to hand off, a command blocks, or the connection must close.
resp_session::step resp_session::run_buffered_requests() {
    // One reading of the clocks per batch: the requests of one read arrived together.
    const auto now = service_.now();
    while (!closing_) {
        auto pending = in_.pending();
        if (pending.empty()) return step::read;
        auto r = decoder_.feed(pending, args_);
        in_.consume(r.consumed);
        if (r.status == protocol::decode_status::need_more) return step::read;
        if (r.status == protocol::decode_status::error) {
            writer_.error("ERR " + decoder_.error_message());
            client_log(spdlog::level::debug, client_.peer, "client {} ({}): {}; closing",
                       client_.id, client_.peer, log_text(decoder_.error_message()));
            return step::close;
        }
        if (args_.empty()) continue;  // empty inline line

        last_request_us_ = now.mono_us;
        command_context ctx{args_, writer_, service_, client_, *this, now, {}};
        execute_command(ctx);
        ++service_.counters().commands_processed;
        after_command();
        if (client_.quit) return step::close;
        if (ctx.block) {
            block_ = ctx.block;
            return step::blocked;
        }
        if (out_.size() >= flush_threshold) return step::more;
    }
    return step::close;
}

// Connection bookkeeping a command may have changed: AUTH switches the decoder to the limits
// after authentication; ACK/FAIL/RELEASE end a lease this connection holds.
void resp_session::after_command() {
    if (client_.authenticated != limits_authenticated_) [[unlikely]]
        use_limits_for_client();
    if (!client_.leases.empty() && args_.size() >= 2 && ends_lease(args_[0]))
        client_.leases.erase(args_[1]);
}

void resp_session::use_limits_for_client() {
    limits_authenticated_ = client_.authenticated;
    decoder_.set_limits(limits_authenticated_ ? limits_ : protocol::resp_limits::before_auth());
}

// After a batch: plain TCP writes at once when nothing is in flight and the log has released
// everything the replies depend on; otherwise the writer takes over. The limit counts what
// is still unwritten after that.
void resp_session::hand_off_output() {
    if (out_.empty() || closing_) return;
    if (!writer_busy_ && !tls_ && service_.released(service_.log_position()) &&
        !service_.log_failed()) {
        boost::system::error_code ec;
        const auto n = socket_.write_some(asio::buffer(out_), ec);
        if (!ec && n == out_.size()) {
            out_.clear();
            return;
        }
        if (ec && !would_block(ec)) {
            closing_ = true;  // the peer is gone: the read sees it too
            return;
        }
        out_.erase(0, n);
    }
    if (output_limit_ != 0 && out_.size() + writing_.size() > output_limit_) {
        output_overflowed();
        return;
    }
    if (!writer_busy_) wake_writer();  // else the writer takes it when its write completes
}

void resp_session::wake_writer() {
    writer_wake_.cancel();
}

// The writer: sends the output as the log releases it; after the reader is done, sends what
// is left and ends. A failed write ends the reader too.
asio::awaitable<void> resp_session::write_loop() {
    while (!closing_) {
        if (out_.empty()) {
            if (reader_done_) co_return;
            writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await writer_wake_.async_wait(use_tuple);
            continue;
        }
        if (!co_await write_pending()) {
            closing_ = true;
            boost::system::error_code ignored;
            socket_.cancel(ignored);
            wake_.cancel();
            co_return;
        }
    }
}

// Writes the output present now, once the log has released every record appended before it:
// its own changes, and any change it could have observed (a read of another client's enqueue).
// Replies produced meanwhile stay in out_ for the next round.
asio::awaitable<bool> resp_session::write_pending() {
    writer_busy_ = true;
    const std::size_t n = out_.size();
    const std::uint64_t position = service_.log_position();
    while (!service_.released(position)) {
        if (closing_ || service_.log_failed()) {
            writer_busy_ = false;
            co_return false;
        }
        service_.wait_release(position, released_);
        co_await released_.async_wait(use_tuple);
        // Woken by the log (the entry is gone) or by close() (remove it).
        if (closing_) service_.forget_release_wait(released_);
    }
    if (closing_ || service_.log_failed()) {
        writer_busy_ = false;
        co_return false;
    }
    if (n == out_.size()) {
        writing_.swap(out_);
    } else {
        writing_.assign(out_, 0, n);
        out_.erase(0, n);
    }
    auto [ec, written] =
        tls_ ? co_await asio::async_write(*tls_, asio::buffer(writing_), use_tuple)
             : co_await asio::async_write(socket_, asio::buffer(writing_), use_tuple);
    writing_.clear();
    writer_busy_ = false;
    co_return !ec;
}

// --output-buffer-limit: the client does not read its replies. Redis's words in the log; the
// leases granted through this connection go back to their queues at once, rather than when
// they run out, since nobody will ever see them.
void resp_session::output_overflowed() {
    const auto pending = out_.size() + writing_.size();
    std::size_t released = 0;
    const auto now = service_.now();
    for (const auto& lease : client_.leases) {
        if (service_.core().release(lease, 0, now) == core::op_status::ok) ++released;
    }
    client_.leases.clear();
    service_.deadlines_changed();
    spdlog::warn(
        "client {} ({}) closed for overcoming of output buffer limits: {} bytes of replies "
        "unwritten (--output-buffer-limit {}); {} lease(s) released",
        client_.id, client_.peer, pending, output_limit_, released);
    out_.clear();
    close();
}

asio::awaitable<void> resp_session::wait_while_blocked() {
    using namespace asio::experimental::awaitable_operators;
    while (block_ && !closing_) {
        // Look before waiting: epoll is edge-triggered, and a readiness event (say the peer's
        // FIN) consumed while this session was flushing would never wake the wait below.
        if (in_.pending().size() < max_input_while_blocked && !read_available()) {
            closing_ = true;
            break;
        }
        wake_.expires_at(block_->deadline.value_or(std::chrono::steady_clock::time_point::max()));
        if (in_.pending().size() >= max_input_while_blocked) {
            auto [ec] = co_await wake_.async_wait(use_tuple);
            if (!ec && block_) break;
            continue;
        }
        auto woke = co_await (wake_.async_wait(use_tuple) ||
                              socket_.async_wait(tcp::socket::wait_read, use_tuple));
        if (woke.index() == 0) {
            if (!std::get<0>(std::get<0>(woke)) && block_) break;  // deadline passed
        } else if (std::get<0>(std::get<1>(woke)) || !read_available()) {
            closing_ = true;  // the peer went away while blocked
        }
    }
    if (block_ && !closing_) {  // timed out without being served
        service_.forget_waiter(block_->waiter);
        write_timeout(writer_, block_->on_timeout);
        block_.reset();
    }
    // Waiting is not idling: the idle timeout counts from the end of the wait.
    last_request_us_ = service_.now().mono_us;
}

// Keeps whatever has arrived for later, without blocking. False when the peer is gone (eof
// or an error); nothing to read is not an error. Over TLS it reads until the socket and the
// TLS layer are both drained, so that waiting for the socket's readiness afterwards is sound.
bool resp_session::read_available() {
    while (true) {
        auto room = in_.prepare(read_chunk);
        boost::system::error_code ec;
        const auto n = tls_ ? tls_->read_some(asio::buffer(room.data(), room.size()), ec)
                            : socket_.read_some(asio::buffer(room.data(), room.size()), ec);
        in_.commit(n);
        if (ec) return would_block(ec);
        if (!tls_ || in_.pending().size() >= max_input_while_blocked) return true;
    }
}

void resp_session::on_leased(std::span<const core::leased_task> tasks) {
    write_leased_tasks(writer_, tasks);
    remember_leases(client_, service_.core(), tasks);
    unblocked();
}

void resp_session::on_popped(std::string_view queue, std::string_view payload) {
    write_popped(writer_, queue, payload);
    unblocked();
}

void resp_session::on_result(const core::task_view& task) {
    write_result(writer_, task);
    unblocked();
}

void resp_session::on_deferred(const deferred_reply& finish) {
    finish(writer_, client_);
    // AUTH may have authenticated the connection: the next request is read with the limits
    // that apply after authentication.
    if (client_.authenticated != limits_authenticated_) use_limits_for_client();
    unblocked();
}

void resp_session::access_changed() {
    if (!block_ || closing_) return;
    // args_ still holds the blocked request: the decoder is fed again only once it ends.
    command_context ctx{args_, writer_, service_, client_, *this, service_.now(), {}};
    const bool waits_on = recheck_blocked_command(ctx);
    // A removed user's connection reads its next requests with the limits before AUTH.
    if (client_.authenticated != limits_authenticated_) use_limits_for_client();
    if (waits_on) return;
    service_.forget_waiter(block_->waiter);
    unblocked();  // the reader wakes, sends the reply and reads on
}

void resp_session::unblocked() {
    block_.reset();
    wake_.cancel();
}

}  // namespace conveyor::server

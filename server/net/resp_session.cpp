#include "net/resp_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <cstring>

namespace asio = boost::asio;
using asio::ip::tcp;

namespace conveyor::server {
namespace {

// Bytes read per read call, and the most unprocessed input kept while a command is blocked
// (beyond it the session stops reading until it is unblocked: back-pressure on the peer).
constexpr std::size_t read_chunk = 16 * 1024;
constexpr std::size_t max_input_while_blocked = 1024 * 1024;
// Replies are flushed once a batch has produced this much, so a long pipeline of large
// replies does not build up unbounded output before the first write.
constexpr std::size_t flush_threshold = 64 * 1024;

protocol::resp_limits limits_for(const server_config& config) {
    protocol::resp_limits limits;
    limits.max_bulk_len = static_cast<std::size_t>(config.max_payload);
    return limits;
}

}  // namespace

std::span<char> input_buffer::prepare(std::size_t n) {
    auto pending_len = end_ - begin_;
    if (capacity_ - end_ < n) {
        if (capacity_ - pending_len >= n && begin_ > 0) {
            std::memmove(data_.get(), data_.get() + begin_, pending_len);
        } else {
            auto bigger = std::max(capacity_ * 2, pending_len + n);
            auto fresh = std::make_unique_for_overwrite<char[]>(bigger);
            if (pending_len) std::memcpy(fresh.get(), data_.get() + begin_, pending_len);
            data_ = std::move(fresh);
            capacity_ = bigger;
        }
        begin_ = 0;
        end_ = pending_len;
    } else if (begin_ == end_) {
        begin_ = end_ = 0;  // empty: start over at the front
    }
    return {data_.get() + end_, capacity_ - end_};
}

resp_session::resp_session(tcp::socket socket, broker_service& service, std::uint64_t id)
    : socket_(std::move(socket)),
      service_(service),
      decoder_(limits_for(service.config())),
      writer_(out_, protocol::resp_version::resp2),
      wake_(socket_.get_executor()),
      released_(socket_.get_executor()) {
    client_.id = id;
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
        client_.peer = ep.address().to_string() + ":" + std::to_string(ep.port());
        auto a = ep.address();
        if (a.is_v6() && a.to_v6().is_v4_mapped())
            a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
        client_.loopback = a.is_loopback();
    }
    socket_.set_option(tcp::no_delay(true), ec);
    // Synchronous reads (read_available) must never block the broker's only thread.
    socket_.non_blocking(true, ec);
}

asio::awaitable<void> resp_session::run() {
    ++service_.counters().connected_clients;
    if (auto refusal = service_.admit(client_)) {
        // Protected mode and the like: one error line, then the connection closes.
        out_ = "-" + *refusal + "\r\n";
        co_await flush();
        end_session();
        co_return;
    }
    // An unexpected exception ends only this session, but its waiter must not outlive it:
    // the core would hand a task to a session that no longer exists. (Not a destructor:
    // frames destroyed at a forced shutdown must not touch the service, which is gone.)
    try {
        co_await serve();
    } catch (...) {
        end_session();
        throw;
    }
    end_session();
}

asio::awaitable<void> resp_session::serve() {
    while (true) {
        auto next = run_buffered_requests();
        service_.deadlines_changed();
        if (!out_.empty() && !co_await flush()) break;
        if (next == step::close || closing_) break;
        if (next == step::blocked) {
            co_await wait_while_blocked();
            continue;
        }
        if (next == step::more) continue;

        auto room = in_.prepare(read_chunk);
        auto [ec, n] = co_await socket_.async_read_some(asio::buffer(room.data(), room.size()),
                                                        asio::as_tuple(asio::use_awaitable));
        in_.commit(n);
        if (ec) break;  // eof, reset, cancelled: the peer is gone or we are shutting down
    }
}

void resp_session::end_session() {
    if (block_) service_.forget_waiter(block_->waiter);
    block_.reset();
    --service_.counters().connected_clients;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

void resp_session::close() {
    closing_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    wake_.cancel();
    released_.cancel();
}

// Runs complete requests from the input buffer, in order, until the input is used up, the
// output is large enough to flush, a command blocks, or the connection must close.
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
            spdlog::debug("client {} ({}): {}; closing", client_.id, client_.peer,
                          decoder_.error_message());
            return step::close;
        }
        if (args_.empty()) continue;  // empty inline line

        command_context ctx{args_, writer_, service_, client_, *this, now, {}};
        execute_command(ctx);
        ++service_.counters().commands_processed;
        if (client_.quit) return step::close;
        if (ctx.block) {
            block_ = ctx.block;
            return step::blocked;
        }
        if (out_.size() >= flush_threshold) return step::more;
    }
    return step::close;
}

asio::awaitable<bool> resp_session::flush() {
    // No reply leaves before the log has released every record appended before it: its own
    // changes, and any change it could have observed (a read of another client's enqueue).
    const std::uint64_t position = service_.log_position();
    while (!service_.released(position)) {
        if (closing_ || service_.log_failed()) co_return false;
        service_.wait_release(position, released_);
        co_await released_.async_wait(asio::as_tuple(asio::use_awaitable));
        // Woken by the log (the entry is gone) or by close() (remove it).
        if (closing_) service_.forget_release_wait(released_);
    }
    if (service_.log_failed()) co_return false;
    // Replies produced while this write is in flight (a wake-up of a blocked command) go to
    // out_, never into the buffer being written.
    writing_.swap(out_);
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(writing_),
                                              asio::as_tuple(asio::use_awaitable));
    writing_.clear();
    co_return !ec;
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
            auto [ec] = co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!ec && block_) break;
            continue;
        }
        auto woke = co_await (
            wake_.async_wait(asio::as_tuple(asio::use_awaitable)) ||
            socket_.async_wait(tcp::socket::wait_read, asio::as_tuple(asio::use_awaitable)));
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
}

// Keeps whatever has arrived for later, without blocking. False when the peer is gone (eof
// or an error); nothing to read is not an error.
bool resp_session::read_available() {
    auto room = in_.prepare(read_chunk);
    boost::system::error_code ec;
    auto n = socket_.read_some(asio::buffer(room.data(), room.size()), ec);
    in_.commit(n);
    return !ec || ec == asio::error::would_block || ec == asio::error::try_again;
}

void resp_session::on_leased(std::span<const core::leased_task> tasks) {
    write_leased_tasks(writer_, tasks);
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

void resp_session::unblocked() {
    block_.reset();
    wake_.cancel();
}

}  // namespace conveyor::server

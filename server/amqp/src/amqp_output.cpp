// The AMQP session's output: non-blocking writes where the output arises, large delivery
// bodies straight from their tasks, and the writer coroutine for when the socket is full.
#include <conveyor/amqp/amqp_session.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>

#include <sys/socket.h>
#include <sys/uio.h>

namespace asio = boost::asio;
using asio::ip::tcp;
namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// How long the broker waits for Close-Ok after sending Connection.Close before it drops the
// connection anyway.
constexpr auto close_ok_grace = std::chrono::seconds(3);

constexpr std::size_t direct_body_min = 16 * 1024;
constexpr std::size_t direct_flush_bytes = 1024 * 1024;
constexpr std::size_t direct_max_iov = 1024;  // IOV_MAX on Linux
// The most out_ keeps allocated once drained (a burst's megabytes go back to the allocator).
constexpr std::size_t out_keep_capacity = 256 * 1024;

// Writes `iov` with as few sendmsg calls as IOV_MAX allows; stops at a short write or an error
// (`error` then set). Returns the bytes written.
std::size_t send_gathered(int fd, const std::vector<iovec>& iov, int& error) {
    std::size_t written = 0;
    for (std::size_t at = 0; at < iov.size();) {
        msghdr msg{};
        msg.msg_iov = const_cast<iovec*>(iov.data() + at);
        msg.msg_iovlen = std::min(iov.size() - at, direct_max_iov);
        const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            error = errno;
            break;
        }
        written += static_cast<std::size_t>(n);
        std::size_t step = static_cast<std::size_t>(n);
        while (at < iov.size() && step >= iov[at].iov_len) step -= iov[at++].iov_len;
        if (step > 0) break;  // a short write: the socket is full
    }
    return written;
}

std::size_t iov_bytes(const std::vector<iovec>& iov) {
    std::size_t n = 0;
    for (const auto& b : iov) n += b.iov_len;
    return n;
}

}  // namespace

// Output. out_[out_sent_, end) is what is due and not yet written. Writes are non-blocking and
// made where the output arises: at the end of a turn (wake_writer) and for large bodies
// (flush_direct). Only when the socket is full does the writer coroutine take over: it waits
// until the socket is writable, writes on, and once everything is out lets the consumers that
// were held back (pump) go on.
//
// A body of at least direct_body_min goes straight from the task to the socket, sparing its
// copy into out_ (with 64 KiB messages that copy was a quarter of the broker's time per
// delivery). The bodies of one turn's deliveries are gathered and written together with the
// output around them, one sendmsg per direct_flush_bytes (fewer, fuller TCP segments than one
// write per message). What the socket does not take is copied into out_, in order, and the
// consumers wait (pump) until the socket has taken it: a full socket does not turn every later
// body into a copy.
void amqp_session::output_body(std::uint16_t channel, std::string_view body) {
    if (body.size() < direct_body_min || socket_full_ || write_failed_ || closing_ || ended_) {
        amqp::encode_body_frames(out_, channel, body, fsm_.frame_max());
        return;
    }
    direct_.push_back({out_.size(), body, channel});
    direct_bytes_ += body.size();
    // Up to 1 + 3 per frame buffers a body, and the tail of out_.
    if (direct_bytes_ >= direct_flush_bytes ||
        (direct_.size() + 1) * (1 + 3 * amqp::body_frame_count(body.size(), fsm_.frame_max())) + 1 >
            direct_max_iov)
        flush_direct();
}

void amqp_session::flush_direct() {
    if (direct_.empty()) return;
    if (socket_full_ || write_failed_ || closing_ || ended_) {
        merge_direct();
    } else {
        write_direct();
    }
}

// Nothing can be written now: the bodies go into out_ in order, as any other output.
void amqp_session::merge_direct() {
    std::string merged;
    merged.reserve(pending_out() + direct_bytes_ + direct_bytes_ / 1024 + 64);
    std::size_t from = out_sent_;
    for (const auto& d : direct_) {
        merged.append(out_, from, d.out_end - from);
        amqp::encode_body_frames(merged, d.channel, d.body, fsm_.frame_max());
        from = d.out_end;
    }
    merged.append(out_, from, std::string::npos);
    out_.swap(merged);
    out_sent_ = 0;
    direct_.clear();
    direct_bytes_ = 0;
}

void amqp_session::write_direct() {
    // The buffers: per body, the output before it, then per body frame its header, its chunk
    // of the body and the end octet; last, the rest of out_.
    static constexpr char frame_end_octet = static_cast<char>(amqp::frame_end);
    const std::size_t chunk = amqp::body_chunk_size(fsm_.frame_max());
    std::size_t frames_total = 0;
    for (const auto& d : direct_)
        frames_total += amqp::body_frame_count(d.body.size(), fsm_.frame_max());
    std::string headers;  // reserved whole: the buffers point into it as it is filled
    headers.reserve(frames_total * amqp::frame_header_size);
    std::vector<iovec> iov;
    iov.reserve(direct_.size() + 3 * frames_total + 1);
    auto add = [&](const char* p, std::size_t n) {
        if (n > 0) iov.push_back({const_cast<char*>(p), n});
    };
    std::size_t from = out_sent_;
    for (const auto& d : direct_) {
        add(out_.data() + from, d.out_end - from);
        from = d.out_end;
        for (std::size_t at = 0; at < d.body.size(); at += chunk) {
            const std::size_t n = std::min(chunk, d.body.size() - at);
            const std::size_t header_at = headers.size();
            amqp::encode_frame_header(headers, amqp::frame_type::body, d.channel,
                                      static_cast<std::uint32_t>(n));
            add(headers.data() + header_at, amqp::frame_header_size);
            add(d.body.data() + at, n);
            add(&frame_end_octet, 1);
        }
    }
    add(out_.data() + from, out_.size() - from);
    direct_.clear();
    direct_bytes_ = 0;
    int error = 0;
    std::size_t written = send_gathered(socket_.native_handle(), iov, error);
    if (error != 0) note_write_error(error);
    if (written < iov_bytes(iov) && error == 0) socket_full_ = true;  // a short write
    if (written > 0) note_written();
    std::string left;
    for (const auto& b : iov) {
        if (written >= b.iov_len) {
            written -= b.iov_len;
            continue;
        }
        left.append(static_cast<const char*>(b.iov_base) + written, b.iov_len - written);
        written = 0;
    }
    out_.swap(left);
    out_sent_ = 0;
}

void amqp_session::write_now() {
    while (out_sent_ < out_.size() && !socket_full_ && !write_failed_) {
        const ssize_t n = ::send(socket_.native_handle(), out_.data() + out_sent_,
                                 out_.size() - out_sent_, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            note_write_error(errno);
            break;
        }
        out_sent_ += static_cast<std::size_t>(n);
        note_written();
        if (out_sent_ < out_.size()) socket_full_ = true;  // a short write
    }
    if (out_sent_ == out_.size()) {
        out_.clear();
        out_sent_ = 0;
        if (out_.capacity() > out_keep_capacity) std::string().swap(out_);  // a burst's
    } else if (out_sent_ >= out_keep_capacity && out_sent_ >= out_.size() / 2) {
        out_.erase(0, out_sent_);  // what was written goes (amortised: at least half of it)
        out_sent_ = 0;
    }
}

void amqp_session::note_written() {
    fsm_.note_write(service_.now().mono_us);
}

void amqp_session::note_write_error(int error) {
    if (error == EAGAIN || error == EWOULDBLOCK) {
        socket_full_ = true;
        return;
    }
    // The peer is gone, or the socket failed: the writer closes the session.
    if (!write_failed_) {
        write_failed_ = true;
        write_error_ = boost::system::error_code(error, boost::system::system_category());
    }
}

void amqp_session::wake_writer() {
    if (service_.log_failed()) {  // fail-stop: what this turn produced is not sent
        close();
        return;
    }
    flush_direct();  // (every delivering path has flushed already; this keeps it so)
    if (!socket_full_) write_now();
    if (pending_out() > 0 || write_failed_ || reader_done_ || close_after_flush_)
        writer_wake_.cancel();
}

asio::awaitable<void> amqp_session::write_loop() {
    while (!closing_) {
        if (write_failed_) {
            if (write_error_ != asio::error::connection_reset &&
                write_error_ != asio::error::broken_pipe)
                spdlog::debug("amqp client {} ({}): write failed: {}", client_.id, client_.peer,
                              write_error_.message());
            close();
            break;
        }
        if (pending_out() == 0) {
            if (reader_done_ || close_after_flush_) break;
            writer_wake_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await writer_wake_.async_wait(use_tuple);
            continue;
        }
        if (socket_full_) {
            auto [ec] = co_await socket_.async_wait(tcp::socket::wait_write, use_tuple);
            if (ec) {
                if (ec != asio::error::operation_aborted)
                    spdlog::debug("amqp client {} ({}): write failed: {}", client_.id, client_.peer,
                                  ec.message());
                close();
                break;
            }
            socket_full_ = false;
        }
        write_now();
        // Consumers held back while the socket was full go on now.
        if (pending_out() == 0 && !socket_full_ && !write_failed_ && !ended_) pump_all();
    }
    if (close_after_flush_ && !closing_) {
        // Let the peer read what was sent before the socket goes (no RST over unread data).
        boost::system::error_code ignored;
        socket_.shutdown(tcp::socket::shutdown_send, ignored);
        if (!reader_done_) {
            close_timer_.expires_after(close_ok_grace);
            co_await close_timer_.async_wait(use_tuple);
        }
        close();
    }
}

}  // namespace conveyor::server

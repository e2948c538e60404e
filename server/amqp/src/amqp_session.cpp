// AMQP sessions: the socket, the handshake, the connection and channel classes, heartbeats
// and publisher confirms. Exchange, queue and basic methods are in amqp_basic.cpp.
#include <conveyor/amqp/amqp_session.hpp>

#include <conveyor/runtime/log_limiter.hpp>
#include <conveyor/runtime/log_text.hpp>

#include <conveyor/protocol/amqp_sasl.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <sys/uio.h>

namespace asio = boost::asio;
using asio::ip::tcp;
namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;  // room made in in_ before each read
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// How long the broker waits for Close-Ok after sending Connection.Close before it drops the
// connection anyway.
constexpr auto close_ok_grace = std::chrono::seconds(3);

amqp::connection_limits limits_for(const server_config& config) {
    amqp::connection_limits limits;
    limits.frame_max = amqp::default_frame_max;
    limits.commands.max_body_size = static_cast<std::uint64_t>(config.max_payload);
    limits.commands.channel_max = static_cast<std::uint16_t>(config.amqp_channel_max);
    return limits;
}

}  // namespace

// ---- envelope ------------------------------------------------------------------------------

// Version byte 1 (2: the same layout, routed to an exclusive queue), then exchange and routing
// key as AMQP shortstrs, then the raw properties.
namespace {
constexpr char envelope_plain = '\x01';
constexpr char envelope_exclusive = '\x02';
}  // namespace

void mark_envelope_exclusive(std::string& envelope, bool exclusive) {
    if (envelope.empty()) return;
    envelope[0] = exclusive ? envelope_exclusive : envelope_plain;
}

bool envelope_marks_exclusive(std::string_view bytes) noexcept {
    return !bytes.empty() && bytes[0] == envelope_exclusive;
}

std::string encode_envelope(std::string_view exchange, std::string_view routing_key,
                            std::string_view raw_properties) {
    exchange = exchange.substr(0, 255);
    routing_key = routing_key.substr(0, 255);
    std::string out;
    out.reserve(3 + exchange.size() + routing_key.size() + raw_properties.size());
    out.push_back(envelope_plain);
    out.push_back(static_cast<char>(exchange.size()));
    out.append(exchange);
    out.push_back(static_cast<char>(routing_key.size()));
    out.append(routing_key);
    out.append(raw_properties);
    return out;
}

amqp_envelope decode_envelope(std::string_view bytes, std::string_view queue) {
    static constexpr std::string_view no_properties{"\0\0", 2};
    amqp_envelope env{"", queue, no_properties};
    if (bytes.size() < 3 || (bytes[0] != envelope_plain && bytes[0] != envelope_exclusive)) {
        return env;
    }
    std::size_t pos = 1;
    const auto ex_len = static_cast<unsigned char>(bytes[pos++]);
    if (pos + ex_len + 1 > bytes.size()) return env;
    const auto exchange = bytes.substr(pos, ex_len);
    pos += ex_len;
    const auto rk_len = static_cast<unsigned char>(bytes[pos++]);
    if (pos + rk_len > bytes.size()) return env;
    env.exchange = exchange;
    env.routing_key = bytes.substr(pos, rk_len);
    pos += rk_len;
    if (bytes.size() - pos >= 2) env.raw_properties = bytes.substr(pos);
    return env;
}

void amqp_consumer::on_leased(std::span<const core::leased_task> tasks) {
    waiter.reset();
    session->consumer_leased(*this, tasks);
}

// ---- session -------------------------------------------------------------------------------

amqp_session::amqp_session(tcp::socket socket, amqp_vhost& vhost, std::uint64_t id)
    : socket_(std::move(socket)),
      vhost_(vhost),
      service_(vhost.service()),
      decoder_(amqp::peer::server, limits_for(vhost.service().config())),
      writer_wake_(socket_.get_executor()),
      heartbeat_timer_(socket_.get_executor()),
      released_(socket_.get_executor()),
      confirm_wake_(socket_.get_executor()),
      close_timer_(socket_.get_executor()),
      unblock_timer_(socket_.get_executor()) {
    client_.id = id;
    client_.name = "amqp";
    describe_peer(socket_, client_);
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // writes are made directly (write_now, flush_direct)
    channel_max_ = static_cast<std::uint16_t>(service_.config().amqp_channel_max);
    last_read_us_ = last_write_us_ = service_.now().mono_us;
}

amqp_session::~amqp_session() {
    *alive_ = false;
}

asio::awaitable<void> amqp_session::run() {
    using namespace asio::experimental::awaitable_operators;
    ++service_.counters().connected_clients;
    try {
        co_await (read_loop() && write_loop() && heartbeat_loop() && confirm_loop());
    } catch (...) {
        end_session();
        throw;
    }
    end_session();
}

void amqp_session::close() {
    closing_ = true;
    reader_done_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
    writer_wake_.cancel();
    heartbeat_timer_.cancel();
    released_.cancel();
    confirm_wake_.cancel();
    close_timer_.cancel();
    unblock_timer_.cancel();
}

bool amqp_session::idle_longer_than(std::int64_t now_mono_us,
                                    std::int64_t timeout_us) const noexcept {
    // Consumers wait by design, as blocked RESP clients do: a connection with one is not idle.
    for (const auto& [n, ch] : channels_)
        if (!ch.consumers.empty()) return false;
    return !closing_ && now_mono_us - last_read_us_ >= timeout_us;
}

void amqp_session::end_session() {
    if (ended_) return;
    ended_ = true;
    *alive_ = false;
    for (auto& [n, ch] : channels_) end_channel(ch);
    channels_.clear();
    for (const auto& name : vhost_.topology().queues_owned_by(client_.id)) {
        vhost_.delete_queue(name);
    }
    vhost_.save_if_changed();
    service_.deadlines_changed();
    --service_.counters().connected_clients;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    writer_wake_.cancel();
    heartbeat_timer_.cancel();
    released_.cancel();
    confirm_wake_.cancel();
    unblock_timer_.cancel();
    service_.forget_release_wait(released_);
}

asio::awaitable<void> amqp_session::read_loop() {
    while (!reader_done_ && !closing_) {
        if (blocked_) {
            co_await wait_unblocked();
            continue;
        }
        // Reads go straight into in_, past in_end_ (the bytes that arrived). An AUTH verdict
        // may resume the input (process_input) while this read is pending: it sees only
        // [in_begin_, in_end_), and nothing here moves the buffer until the read is done.
        if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
        if (in_.size() - in_end_ < read_chunk) {
            if (in_begin_ > 0) {  // keep the unconsumed part (a frame's start) at the front
                std::memmove(in_.data(), in_.data() + in_begin_, in_end_ - in_begin_);
                in_end_ -= in_begin_;
                in_begin_ = 0;
            }
            if (in_.size() - in_end_ < read_chunk) in_.resize(in_end_ + read_chunk);
        }
        auto [ec, n] = co_await socket_.async_read_some(
            asio::buffer(in_.data() + in_end_, in_.size() - in_end_), use_tuple);
        in_end_ += n;
        if (ec || closing_) {
            if (ec && ec != asio::error::eof && ec != asio::error::operation_aborted &&
                ec != asio::error::connection_reset) {
                spdlog::debug("amqp client {} ({}): read failed: {}", client_.id, client_.peer,
                              ec.message());
            } else if (phase_ == phase::running && !closing_) {
                spdlog::info("amqp client {} ({}) closed the connection without Connection.Close",
                             client_.id, client_.peer);
            }
            break;
        }
        last_read_us_ = service_.now().mono_us;
        process_input();
        after_batch();
    }
    reader_done_ = true;
    wake_writer();
    confirm_wake_.cancel();
    heartbeat_timer_.cancel();
    close_timer_.cancel();
}

void amqp_session::process_input() {
    while (!reader_done_ && !closing_) {
        std::string_view pending(in_.data() + in_begin_, in_end_ - in_begin_);
        if (pending.empty()) return;
        if (phase_ == phase::header) {
            auto h = amqp::check_protocol_header(pending);
            if (h.status == amqp::header_status::need_more) return;
            if (h.status == amqp::header_status::unsupported) {
                client_log(spdlog::level::info, client_.peer,
                           "amqp client {} ({}): unsupported protocol header: {}; closing",
                           client_.id, client_.peer, h.description);
                out_.append(amqp::protocol_header);
                close_after_flush_ = true;
                reader_done_ = true;
                return;
            }
            in_begin_ += h.consumed;
            on_header();
            continue;
        }
        if (phase_ == phase::closed) {  // after a framing error: nothing more is read
            in_begin_ = in_end_;
            return;
        }
        if (phase_ == phase::authenticating) return;  // the verdict resumes the input
        if (blocked_) return;                         // wait_unblocked resumes the input
        amqp::command cmd;
        const auto step = decoder_.feed(pending, cmd);
        in_begin_ += step.consumed;
        switch (step.status) {
            case amqp::decode_step_status::need_more:
                return;
            case amqp::decode_step_status::heartbeat:
                continue;
            case amqp::decode_step_status::error:
                if (phase_ == phase::closing) {
                    phase_ = phase::closed;
                    continue;
                }
                connection_error(decoder_.error());
                phase_ = phase::closed;
                continue;
            case amqp::decode_step_status::body_too_large: {
                auto* ch = find_channel(cmd.channel);
                if (!ch || ch->closing || phase_ != phase::running) continue;
                const auto size = cmd.header ? cmd.header->body_size : 0;
                if (ch->confirm) {
                    ++ch->publish_seq;
                    confirm(*ch, false);
                    spdlog::info(
                        "amqp client {} ({}): message of {} bytes refused (--max-payload "
                        "{}); nacked",
                        client_.id, client_.peer, size, service_.config().max_payload);
                } else {
                    channel_error(*ch, amqp::reply_code::precondition_failed,
                                  "PRECONDITION_FAILED - message size " + std::to_string(size) +
                                      " is larger than configured max size " +
                                      std::to_string(service_.config().max_payload),
                                  amqp::key_of(cmd.method));
                }
                continue;
            }
            case amqp::decode_step_status::command:
                if (hold_publish(cmd)) return;
                on_command(cmd);
                continue;
        }
    }
}

// RabbitMQ's resource alarms: a connection is blocked when it publishes while new work is
// refused (broker_service::admit_change: the disk of the log is full, or memory is past
// --maxmemory). That publish is kept, not refused, and runs first once work is admitted
// again; the connection's other traffic waits with it (as in RabbitMQ), other connections go
// on. Nothing is read from its socket meanwhile, so TCP holds the publisher back.
bool amqp_session::hold_publish(amqp::command& cmd) {
    if (phase_ != phase::running || !std::holds_alternative<amqp::basic_publish>(cmd.method))
        return false;
    const auto verdict = service_.admit_change(storage::change_kind::adds, cmd.body.size() + 256);
    if (verdict == broker_service::admission::admitted) return false;
    held_publish_ = std::move(cmd);
    blocked_ = true;
    client_log(spdlog::level::info, client_.peer,
               "amqp client {} ({}): blocked (new work is refused: disk full or --maxmemory); "
               "its input waits until work is admitted again",
               client_.id, client_.peer);
    if (blocked_capability_) {
        send(0, amqp::connection_blocked{"low on resources: disk full or memory past "
                                         "--maxmemory"});
        wake_writer();
    }
    return true;
}

// Looks again ten times a second (the log tries the disk again once a second). The peer is
// not read while blocked, so the heartbeat check does not count the time against it.
asio::awaitable<void> amqp_session::wait_unblocked() {
    while (blocked_ && !closing_ && !reader_done_) {
        unblock_timer_.expires_after(std::chrono::milliseconds(100));
        co_await unblock_timer_.async_wait(use_tuple);
        if (closing_ || ended_) co_return;
        last_read_us_ = service_.now().mono_us;
        if (service_.adds_refused()) continue;
        blocked_ = false;
        client_log(spdlog::level::info, client_.peer, "amqp client {} ({}): unblocked", client_.id,
                   client_.peer);
        if (blocked_capability_) send(0, amqp::connection_unblocked{});
        auto held = std::move(*held_publish_);
        held_publish_.reset();
        on_command(held);
        process_input();
        after_batch();
    }
}

// Work left by this batch of input or a wake-up: ACKs of no-ack deliveries, consumers to
// re-arm, output to send.
void amqp_session::after_batch() {
    if (ended_) return;
    if (!pump_after_batch_.empty()) {
        auto numbers = std::move(pump_after_batch_);
        pump_after_batch_.clear();
        for (const auto n : numbers) {
            if (auto* ch = find_channel(n); ch && !ch->closing) pump_channel(*ch);
        }
    }
    if (!auto_acks_.empty()) {
        const auto now = service_.now();
        auto acks = std::move(auto_acks_);
        auto_acks_.clear();
        for (const auto& lease : acks) service_.core().ack(lease, std::nullopt, now);
    }
    bool confirms = false;
    for (const auto& [n, ch] : channels_) confirms = confirms || !ch.confirms.empty();
    if (confirms && !confirm_waiting_) confirm_wake_.cancel();
    service_.deadlines_changed();
    wake_writer();
}

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
constexpr std::size_t direct_body_min = 16 * 1024;
constexpr std::size_t direct_flush_bytes = 1024 * 1024;
constexpr std::size_t direct_max_iov = 1024;  // IOV_MAX on Linux
// The most out_ keeps allocated once drained (a burst's megabytes go back to the allocator).
constexpr std::size_t out_keep_capacity = 256 * 1024;

void amqp_session::output_body(std::uint16_t channel, std::string_view body) {
    if (body.size() < direct_body_min || socket_full_ || write_failed_ || closing_ || ended_) {
        amqp::encode_body_frames(out_, channel, body, frame_max_);
        return;
    }
    direct_.push_back({out_.size(), body, channel});
    direct_bytes_ += body.size();
    // Up to 1 + 3 per frame buffers a body, and the tail of out_.
    if (direct_bytes_ >= direct_flush_bytes ||
        (direct_.size() + 1) * (1 + 3 * amqp::body_frame_count(body.size(), frame_max_)) + 1 >
            direct_max_iov)
        flush_direct();
}

void amqp_session::flush_direct() {
    if (direct_.empty()) return;
    if (socket_full_ || write_failed_ || closing_ || ended_) {
        // Nothing can be written now: the bodies go into out_ in order, as any other output.
        std::string merged;
        merged.reserve(pending_out() + direct_bytes_ + direct_bytes_ / 1024 + 64);
        std::size_t from = out_sent_;
        for (const auto& d : direct_) {
            merged.append(out_, from, d.out_end - from);
            amqp::encode_body_frames(merged, d.channel, d.body, frame_max_);
            from = d.out_end;
        }
        merged.append(out_, from, std::string::npos);
        out_.swap(merged);
        out_sent_ = 0;
        direct_.clear();
        direct_bytes_ = 0;
        return;
    }
    // The buffers: per body, the output before it, then per body frame its header, its chunk
    // of the body and the end octet; last, the rest of out_.
    static constexpr char frame_end_octet = static_cast<char>(amqp::frame_end);
    const std::size_t chunk = amqp::body_chunk_size(frame_max_);
    std::size_t frames_total = 0;
    for (const auto& d : direct_) frames_total += amqp::body_frame_count(d.body.size(), frame_max_);
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
    std::size_t written = 0;
    for (std::size_t at = 0; at < iov.size();) {
        msghdr msg{};
        msg.msg_iov = iov.data() + at;
        msg.msg_iovlen = std::min(iov.size() - at, direct_max_iov);
        const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            note_write_error(errno);
            break;
        }
        written += static_cast<std::size_t>(n);
        std::size_t step = static_cast<std::size_t>(n);
        while (at < iov.size() && step >= iov[at].iov_len) step -= iov[at++].iov_len;
        if (step > 0) {  // a short write: the socket is full
            socket_full_ = true;
            break;
        }
    }
    if (written > 0) last_write_us_ = service_.now().mono_us;
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
        last_write_us_ = service_.now().mono_us;
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

asio::awaitable<void> amqp_session::heartbeat_loop() {
    // Wait for Tune-Ok: the client picks the interval. A client that has not opened the
    // connection within --handshake-timeout is dropped (RabbitMQ: handshake_timeout).
    const auto handshake_deadline =
        std::chrono::steady_clock::now() +
        std::chrono::milliseconds(service_.config().handshake_timeout_ms);
    while (!reader_done_ && !closing_ &&
           (phase_ == phase::header || phase_ == phase::start_ok ||
            phase_ == phase::authenticating || phase_ == phase::tune_ok || phase_ == phase::open)) {
        if (std::chrono::steady_clock::now() >= handshake_deadline &&
            phase_ != phase::authenticating) {
            client_log(spdlog::level::info, client_.peer,
                       "amqp client {} ({}): handshake not done within {} ms; closing", client_.id,
                       client_.peer, service_.config().handshake_timeout_ms);
            close();
            co_return;
        }
        heartbeat_timer_.expires_after(std::chrono::milliseconds(100));
        co_await heartbeat_timer_.async_wait(use_tuple);
    }
    if (phase_ != phase::running) co_return;
    if (heartbeat_s_ == 0) co_return;
    const std::int64_t interval_us = std::int64_t{heartbeat_s_} * 1000000;
    while (!reader_done_ && !closing_ && !close_after_flush_) {
        heartbeat_timer_.expires_after(std::chrono::microseconds(interval_us / 2));
        co_await heartbeat_timer_.async_wait(use_tuple);
        if (reader_done_ || closing_ || close_after_flush_) break;
        const auto now = service_.now().mono_us;
        if (now - last_read_us_ >= 2 * interval_us) {
            spdlog::info(
                "amqp client {} ({}): missed heartbeats, nothing received for {} s "
                "(heartbeat {} s); closing and requeueing its deliveries",
                client_.id, client_.peer, (now - last_read_us_) / 1000000, heartbeat_s_);
            close();
            break;
        }
        if (now - last_write_us_ >= interval_us / 2 && pending_out() == 0) {
            amqp::encode_heartbeat(out_);
            wake_writer();
        }
    }
}

// Publisher confirms: a publish is acknowledged once the log has released (synced, under the
// fsync policy) the records of its ENQUEUEs: the same group commit as RESP replies.
asio::awaitable<void> amqp_session::confirm_loop() {
    while (!reader_done_ && !closing_) {
        std::uint64_t wanted = 0;
        bool any = false;
        for (const auto& [n, ch] : channels_) {
            if (ch.confirms.empty()) continue;
            any = true;
            wanted = std::max(wanted, ch.confirms.back().position);
        }
        if (!any) {
            confirm_wake_.expires_at(std::chrono::steady_clock::time_point::max());
            co_await confirm_wake_.async_wait(use_tuple);
            continue;
        }
        if (!service_.released(wanted) && !service_.log_failed()) {
            confirm_waiting_ = true;
            service_.wait_release(wanted, released_);
            co_await released_.async_wait(use_tuple);
            confirm_waiting_ = false;
            service_.forget_release_wait(released_);
            if (reader_done_ || closing_ || ended_) break;
        }
        if (service_.log_failed()) {
            close();
            break;
        }
        for (auto& [n, ch] : channels_) {
            std::optional<std::uint64_t> ack_upto;
            while (!ch.confirms.empty()) {
                const auto& c = ch.confirms.front();
                if (c.ack && !service_.released(c.position)) break;
                if (c.ack) {
                    ack_upto = c.seq;
                } else {
                    if (ack_upto) send(ch.number, amqp::basic_ack{*ack_upto, true});
                    ack_upto.reset();
                    send(ch.number, amqp::basic_nack{c.seq, false, false});
                }
                ch.confirms.pop_front();
            }
            if (ack_upto) send(ch.number, amqp::basic_ack{*ack_upto, true});
        }
        wake_writer();
    }
}

// ---- connection class ----------------------------------------------------------------------

void amqp_session::on_header() {
    amqp::server_identity identity;
    identity.version = CONVEYOR_VERSION;
    identity.information = "https://github.com/conveyor (AMQP 0-9-1 lite: docs/amqp.md)";
    send(0, amqp::make_connection_start(identity));
    phase_ = phase::start_ok;
}

void amqp_session::on_command(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    if (phase_ == phase::closing) {
        // After Connection.Close only Close and Close-Ok count (spec 2.2.4 / connection.close).
        if (std::holds_alternative<amqp::connection_close_ok>(cmd.method) ||
            std::holds_alternative<amqp::connection_close>(cmd.method)) {
            if (std::holds_alternative<amqp::connection_close>(cmd.method))
                send(0, amqp::connection_close_ok{});
            phase_ = phase::closed;
            reader_done_ = true;
            close_after_flush_ = true;
        }
        return;
    }
    if (key.class_id == 10) {
        on_connection_method(cmd);
        return;
    }
    if (phase_ != phase::running) {
        close_connection(
            amqp::reply_code::command_invalid,
            "COMMAND_INVALID - " + amqp::describe(key) + " before the connection was opened", key);
        return;
    }
    // A user removed from the users file is re-checked here, on its next method too, in case
    // the reload's own check (access_changed) did not reach this connection.
    if (forced_out()) return;
    on_channel_method(cmd);
}

void amqp_session::on_connection_method(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    auto unexpected = [&](std::string_view expected) {
        close_connection(amqp::reply_code::command_invalid,
                         "COMMAND_INVALID - expected '" + std::string(expected) + "', got '" +
                             amqp::describe(key) + "'",
                         key);
    };
    if (auto* close = std::get_if<amqp::connection_close>(&cmd.method)) {
        if (close->reply_code != 200) {
            client_log(spdlog::level::info, client_.peer,
                       "amqp client {} ({}) closed the connection: {} {}", client_.id, client_.peer,
                       close->reply_code, log_text(close->reply_text));
        }
        send(0, amqp::connection_close_ok{});
        phase_ = phase::closed;
        reader_done_ = true;
        close_after_flush_ = true;
        return;
    }
    switch (phase_) {
        case phase::start_ok:
            if (auto* m = std::get_if<amqp::connection_start_ok>(&cmd.method)) {
                on_start_ok(*m);
            } else {
                unexpected("connection.start-ok");
            }
            return;
        case phase::tune_ok:
            if (auto* m = std::get_if<amqp::connection_tune_ok>(&cmd.method)) {
                on_tune_ok(*m);
            } else {
                unexpected("connection.tune-ok");
            }
            return;
        case phase::open:
            if (std::holds_alternative<amqp::connection_open>(cmd.method)) {
                // One virtual host: any name is "/" (docs/amqp.md).
                send(0, amqp::connection_open_ok{});
                phase_ = phase::running;
            } else {
                unexpected("connection.open");
            }
            return;
        case phase::running:
            if (auto* m = std::get_if<amqp::connection_update_secret>(&cmd.method)) {
                (void)m;
                send(0, amqp::connection_update_secret_ok{});
            } else if (std::holds_alternative<amqp::connection_close_ok>(cmd.method)) {
                // Not closing: ignore.
            } else {
                close_connection(
                    amqp::reply_code::command_invalid,
                    "COMMAND_INVALID - " + amqp::describe(key) + " on an open connection", key);
            }
            return;
        default:
            unexpected("connection.close");
            return;
    }
}

void amqp_session::on_start_ok(const amqp::connection_start_ok& m) {
    mechanism_ = m.mechanism;
    if (const auto* caps = m.client_properties.find("capabilities")) {
        if (const auto* table = std::get_if<amqp::field_table>(&caps->value)) {
            if (const auto* blocked = table->find("connection.blocked")) {
                const auto* on = std::get_if<bool>(&blocked->value);
                blocked_capability_ = on && *on;
            }
        }
    }
    auto creds = amqp::parse_sasl_response(m.mechanism, m.response);
    if (!creds) {
        connection_error(creds.error());
        return;
    }
    if (auto refusal = service_.admit(client_)) {
        // Protected mode: no password and no users, and the client is not on loopback.
        close_connection(amqp::reply_code::access_refused, "ACCESS_REFUSED - " + *refusal);
        return;
    }
    if (!service_.access().required()) {
        // Nothing configured: any user name and password, from loopback (protected mode).
        client_.user = creds->user.empty() ? "default" : creds->user;
        send(0, amqp::connection_tune{
                    channel_max_, static_cast<std::uint32_t>(service_.config().amqp_frame_max),
                    static_cast<std::uint16_t>(service_.config().amqp_heartbeat)});
        phase_ = phase::tune_ok;
        return;
    }
    // The `default` user (--requirepass) is named "default" or left empty; others by name.
    std::optional<std::string_view> user;
    if (!creds->user.empty()) user = creds->user;
    phase_ = phase::authenticating;
    std::weak_ptr<amqp_session> weak = weak_from_this();
    auto verdict = service_.access().authenticate(client_, user, creds->password,
                                                  [weak](access_control::auth_verdict v) {
                                                      auto self = weak.lock();
                                                      if (!self || self->ended_) return;
                                                      self->finish_auth(v);
                                                      self->process_input();
                                                      self->after_batch();
                                                  });
    if (verdict) finish_auth(*verdict);
}

void amqp_session::finish_auth(const access_control::auth_verdict& verdict) {
    if (verdict.outcome != access_control::auth_outcome::ok) {
        ++service_.counters().auth_failures;
        refuse_login(mechanism_);
        return;
    }
    access_control::apply(client_, verdict);
    send(0, amqp::connection_tune{channel_max_,
                                  static_cast<std::uint32_t>(service_.config().amqp_frame_max),
                                  static_cast<std::uint16_t>(service_.config().amqp_heartbeat)});
    phase_ = phase::tune_ok;
}

void amqp_session::refuse_login(std::string_view mechanism) {
    // RabbitMQ's wording; with authentication_failure_close the client reports it as an
    // authentication error.
    close_connection(amqp::reply_code::access_refused,
                     "ACCESS_REFUSED - Login was refused using authentication mechanism " +
                         std::string(mechanism) + ". For details see the broker logfile.");
}

void amqp_session::on_tune_ok(const amqp::connection_tune_ok& m) {
    // Obeyed as the client answers (docs/amqp.md): 0 means "no limit" for frame_max and
    // channel_max, and "no heartbeats" for heartbeat.
    frame_max_ = amqp::effective_frame_max(m.frame_max);
    decoder_.set_frame_max(m.frame_max);
    channel_max_ = m.channel_max == 0 ? 65535 : m.channel_max;
    decoder_.set_channel_max(channel_max_);
    heartbeat_s_ = m.heartbeat;
    phase_ = phase::open;
}

// An error in the client's bytes (the codec's): its text gets RabbitMQ's form, the code's
// name first ("FRAME_ERROR - unknown frame type 9").
void amqp_session::connection_error(const amqp_error& e) {
    client_log(spdlog::level::info, client_.peer, "amqp client {} ({}): connection error {}: {}",
               client_.id, client_.peer, static_cast<int>(e.code), log_text(e.text));
    std::string text(amqp::reply_code_name(e.code));
    if (text.empty() || e.text.starts_with(text)) {
        text = e.text;
    } else {
        text.append(" - ").append(e.text);
    }
    close_connection(e.code, std::move(text), e.method);
}

void amqp_session::close_connection(amqp::reply_code code, std::string text,
                                    amqp::method_key cause) {
    if (phase_ == phase::closing || phase_ == phase::closed) return;
    send(0, amqp::connection_close{static_cast<std::uint16_t>(code), std::move(text),
                                   cause.class_id, cause.method_id});
    phase_ = phase::closing;
    // Deliveries stop now; what the client holds is requeued when the connection ends.
    for (auto& [n, ch] : channels_) end_channel(ch);
    channels_.clear();
    close_after_flush_ = true;
    wake_writer();
}

// ---- channels ------------------------------------------------------------------------------

amqp_session::channel* amqp_session::find_channel(std::uint16_t number) {
    auto it = channels_.find(number);
    return it == channels_.end() ? nullptr : &it->second;
}

void amqp_session::on_channel_method(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    auto* ch = find_channel(cmd.channel);
    if (std::holds_alternative<amqp::channel_open>(cmd.method)) {
        if (ch) {
            close_connection(amqp::reply_code::channel_error,
                             "CHANNEL_ERROR - second 'channel.open' seen", key);
            return;
        }
        auto& fresh = channels_[cmd.channel];
        fresh.number = cmd.channel;
        fresh.consumer_prefetch = 0;
        send(cmd.channel, amqp::channel_open_ok{});
        return;
    }
    if (!ch) {
        if (std::holds_alternative<amqp::channel_close>(cmd.method)) {
            send(cmd.channel, amqp::channel_close_ok{});
            return;
        }
        if (std::holds_alternative<amqp::channel_close_ok>(cmd.method)) return;
        close_connection(
            amqp::reply_code::channel_error,
            "CHANNEL_ERROR - expected 'channel.open' on channel " + std::to_string(cmd.channel),
            key);
        return;
    }
    if (ch->closing) {
        // Waiting for Close-Ok: everything else is discarded (spec, channel.close).
        if (std::holds_alternative<amqp::channel_close_ok>(cmd.method) ||
            std::holds_alternative<amqp::channel_close>(cmd.method)) {
            if (std::holds_alternative<amqp::channel_close>(cmd.method))
                send(cmd.channel, amqp::channel_close_ok{});
            channels_.erase(cmd.channel);
        }
        return;
    }
    if (auto* close = std::get_if<amqp::channel_close>(&cmd.method)) {
        if (close->reply_code != 200 && close->reply_code != 0) {
            client_log(spdlog::level::debug, client_.peer,
                       "amqp client {} ({}) closed channel {}: {} {}", client_.id, client_.peer,
                       cmd.channel, close->reply_code, log_text(close->reply_text));
        }
        end_channel(*ch);
        channels_.erase(cmd.channel);
        send(cmd.channel, amqp::channel_close_ok{});
        return;
    }
    if (std::holds_alternative<amqp::channel_close_ok>(cmd.method)) return;
    if (auto* flow = std::get_if<amqp::channel_flow>(&cmd.method)) {
        send(cmd.channel, amqp::channel_flow_ok{flow->active});
        return;
    }
    auto error = handle(*ch, cmd);
    vhost_.save_if_changed();
    if (!error) return;
    if (error->connection_error) {
        close_connection(error->code, error->text, key);
    } else {
        channel_error(*ch, *error, key);
    }
}

void amqp_session::channel_error(channel& ch, const amqp_error& e, amqp::method_key cause) {
    channel_error(ch, e.code, e.text, cause);
}

void amqp_session::channel_error(channel& ch, amqp::reply_code code, std::string text,
                                 amqp::method_key cause) {
    client_log(spdlog::level::debug, client_.peer, "amqp client {} ({}): channel {} closed: {} {}",
               client_.id, client_.peer, ch.number, static_cast<int>(code), log_text(text));
    send(ch.number, amqp::make_channel_close(code, std::move(text), cause));
    decoder_.commands().close_channel(ch.number);
    end_channel(ch);
    ch.closing = true;
}

// The channel's consumers stop and what it was delivered and did not settle is requeued
// (redelivered), as RabbitMQ does when a channel closes.
void amqp_session::end_channel(channel& ch) {
    while (!ch.consumers.empty()) remove_consumer(ch, *ch.consumers.begin()->second, true);
    release_unacked(ch);
    ch.confirms.clear();
}

void amqp_session::release_unacked(channel& ch) {
    if (ch.unacked.empty()) return;
    // Taken out first: a release can hand the task straight to a consumer of this channel,
    // whose new delivery must not be swept up here.
    auto taken = std::move(ch.unacked);
    ch.unacked.clear();
    ch.unacked_count = 0;
    for (auto& [tag, c] : ch.consumers) c->unacked = 0;
    const auto now = service_.now();
    for (const auto& [tag, u] : taken) service_.core().release(u.lease, 0, now);
}

}  // namespace conveyor::server

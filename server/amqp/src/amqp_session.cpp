// The AMQP session's driver: the socket reads, the connection machine's events, the login
// check, flow control, heartbeats and publisher confirms. Output is in amqp_output.cpp, the
// method table in amqp_methods.cpp.
#include <conveyor/amqp/amqp_session.hpp>
#include "amqp_errors.hpp"

#include <conveyor/runtime/log_limiter.hpp>
#include <conveyor/runtime/log_text.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace asio = boost::asio;
using asio::ip::tcp;
namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

constexpr std::size_t read_chunk = 64 * 1024;  // room made in in_ before each read
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

amqp_connection_settings settings_for(const server_config& config) {
    amqp_connection_settings s;
    s.channel_max = static_cast<std::uint16_t>(config.amqp_channel_max);
    s.frame_max = static_cast<std::uint32_t>(config.amqp_frame_max);
    s.heartbeat_s = static_cast<std::uint16_t>(config.amqp_heartbeat);
    s.handshake_timeout_us = std::int64_t{config.handshake_timeout_ms} * 1000;
    s.limits.frame_max = amqp::default_frame_max;
    s.limits.commands.max_body_size = static_cast<std::uint64_t>(config.max_payload);
    s.limits.commands.channel_max = static_cast<std::uint16_t>(config.amqp_channel_max);
    s.version = CONVEYOR_VERSION;
    return s;
}

}  // namespace

amqp_session::amqp_session(tcp::socket socket, amqp_vhost& vhost, std::uint64_t id)
    : socket_(std::move(socket)),
      vhost_(vhost),
      service_(vhost.service()),
      fsm_(settings_for(vhost.service().config()), out_, vhost.service().now().mono_us),
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
        if (ch.has_consumers()) return false;
    return !closing_ && now_mono_us - fsm_.last_read_us() >= timeout_us;
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
        // A login verdict may resume the input (process_input) while this read is pending: it
        // only looks at and consumes pending bytes, which never moves the buffer; only
        // prepare() does, and it runs here, before the read.
        auto room = in_.prepare(read_chunk);
        auto [ec, n] =
            co_await socket_.async_read_some(asio::buffer(room.data(), room.size()), use_tuple);
        in_.commit(n);
        if (ec || closing_) {
            if (ec && ec != asio::error::eof && ec != asio::error::operation_aborted &&
                ec != asio::error::connection_reset) {
                spdlog::debug("amqp client {} ({}): read failed: {}", client_.id, client_.peer,
                              ec.message());
            } else if (fsm_.running() && !closing_) {
                spdlog::info("amqp client {} ({}) closed the connection without Connection.Close",
                             client_.id, client_.peer);
            }
            break;
        }
        fsm_.note_read(service_.now().mono_us);
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
    while (!reader_done_ && !closing_ && !blocked_) {
        amqp::command cmd;
        const auto ev = fsm_.feed(in_.pending(), cmd);
        in_.consume(ev.consumed);
        if (!on_event(ev, cmd)) return;
    }
}

bool amqp_session::on_event(const amqp_connection_fsm::event& ev, amqp::command& cmd) {
    using kind = amqp_connection_fsm::event_kind;
    switch (ev.kind) {
        case kind::need_more:
        case kind::paused:
            return false;
        case kind::none:
            return true;
        case kind::login:
            on_login();
            return true;
        case kind::method:
            if (hold_publish(cmd)) return false;
            on_method(cmd);
            return true;
        case kind::body_too_large:
            on_body_too_large(cmd);
            return true;
        case kind::closing:
            if (ev.error) {
                client_log(spdlog::level::info, client_.peer,
                           "amqp client {} ({}): connection error {}: {}", client_.id, client_.peer,
                           static_cast<int>(ev.error->code), log_text(ev.error->text));
            }
            connection_closing();
            return true;
        case kind::done:
            if (ev.error) {
                client_log(spdlog::level::info, client_.peer,
                           "amqp client {} ({}): unsupported protocol header: {}; closing",
                           client_.id, client_.peer, ev.error->text);
            } else if (const auto* c = std::get_if<amqp::connection_close>(&cmd.method);
                       c && c->reply_code != 200) {
                client_log(spdlog::level::info, client_.peer,
                           "amqp client {} ({}) closed the connection: {} {}", client_.id,
                           client_.peer, c->reply_code, log_text(c->reply_text));
            }
            reader_done_ = true;
            close_after_flush_ = true;
            return false;
        default:  // channel events come from channel_method only
            return true;
    }
}

// A method for a channel, after the user is checked again: a user removed from the users
// file is caught here, on its next method, in case the reload's own check (access_changed)
// did not reach this connection.
void amqp_session::on_method(amqp::command& cmd) {
    if (!fsm_.running() || forced_out()) return;
    const auto ev = fsm_.channel_method(cmd);
    using kind = amqp_connection_fsm::event_kind;
    switch (ev.kind) {
        case kind::channel_opened:
            channels_.try_emplace(cmd.channel, cmd.channel);
            return;
        case kind::channel_ended:
            if (auto* ch = find_channel(cmd.channel)) {
                const auto* c = std::get_if<amqp::channel_close>(&cmd.method);
                if (c && c->reply_code != 200 && c->reply_code != 0) {
                    client_log(spdlog::level::debug, client_.peer,
                               "amqp client {} ({}) closed channel {}: {} {}", client_.id,
                               client_.peer, cmd.channel, c->reply_code, log_text(c->reply_text));
                }
                end_channel(*ch);
                channels_.erase(cmd.channel);
            }
            return;
        case kind::closing:
            connection_closing();
            return;
        case kind::command:
            break;
        default:
            return;
    }
    auto* ch = find_channel(cmd.channel);
    if (!ch) return;  // cannot happen: the machine and channels_ open and end together
    const auto key = amqp::key_of(cmd.method);
    auto error = dispatch(*ch, cmd);
    vhost_.save_if_changed();
    if (!error) return;
    if (error->connection_error) {
        close_connection(error->code, error->text, key);
    } else {
        channel_error(*ch, *error, key);
    }
}

void amqp_session::on_login() {
    if (auto refusal = service_.admit(client_)) {
        // Protected mode: no password and no users, and the client is not on loopback.
        close_connection(amqp::reply_code::access_refused, "ACCESS_REFUSED - " + *refusal);
        return;
    }
    const auto& login = fsm_.login();
    if (!service_.access().required()) {
        // Nothing configured: any user name and password, from loopback (protected mode).
        client_.user = login.user.empty() ? "default" : login.user;
        fsm_.login_ok();
        return;
    }
    // The `default` user (--requirepass) is named "default" or left empty; others by name.
    std::optional<std::string_view> user;
    if (!login.user.empty()) user = login.user;
    std::weak_ptr<amqp_session> weak = weak_from_this();
    auto verdict = service_.access().authenticate(client_, user, login.password,
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
        fsm_.login_refused();
        connection_closing();
        return;
    }
    access_control::apply(client_, verdict);
    fsm_.login_ok();
}

void amqp_session::on_body_too_large(const amqp::command& cmd) {
    auto* ch = find_channel(cmd.channel);
    if (!ch || ch->closing()) return;
    const auto size = cmd.header ? cmd.header->body_size : 0;
    if (ch->confirming()) {
        ch->count_publish();
        confirm(*ch, false);
        spdlog::info("amqp client {} ({}): message of {} bytes refused (--max-payload {}); nacked",
                     client_.id, client_.peer, size, service_.config().max_payload);
        return;
    }
    channel_error(*ch,
                  channel_exception(amqp::reply_code::precondition_failed,
                                    "PRECONDITION_FAILED - message size " + std::to_string(size) +
                                        " is larger than configured max size " +
                                        std::to_string(service_.config().max_payload)),
                  amqp::key_of(cmd.method));
}

// RabbitMQ's resource alarms: a connection is blocked when it publishes while new work is
// refused (broker_service::admit_change: the disk of the log is full, or memory is past
// --maxmemory). That publish is kept, not refused, and runs first once work is admitted
// again; the connection's other traffic waits with it (as in RabbitMQ), other connections go
// on. Nothing is read from its socket meanwhile, so TCP holds the publisher back.
bool amqp_session::hold_publish(amqp::command& cmd) {
    if (!fsm_.running() || !std::holds_alternative<amqp::basic_publish>(cmd.method)) return false;
    const auto verdict = service_.admit_change(storage::change_kind::adds, cmd.body.size() + 256);
    if (verdict == broker_service::admission::admitted) return false;
    held_publish_ = std::move(cmd);
    blocked_ = true;
    client_log(spdlog::level::info, client_.peer,
               "amqp client {} ({}): blocked (new work is refused: disk full or --maxmemory); "
               "its input waits until work is admitted again",
               client_.id, client_.peer);
    fsm_.blocked("low on resources: disk full or memory past --maxmemory");
    wake_writer();
    return true;
}

// Looks again ten times a second (the log tries the disk again once a second). The peer is
// not read while blocked, so the heartbeat check does not count the time against it.
asio::awaitable<void> amqp_session::wait_unblocked() {
    while (blocked_ && !closing_ && !reader_done_) {
        unblock_timer_.expires_after(std::chrono::milliseconds(100));
        co_await unblock_timer_.async_wait(use_tuple);
        if (closing_ || ended_) co_return;
        fsm_.note_read(service_.now().mono_us);
        if (service_.adds_refused()) continue;
        blocked_ = false;
        client_log(spdlog::level::info, client_.peer, "amqp client {} ({}): unblocked", client_.id,
                   client_.peer);
        fsm_.unblocked();
        auto held = std::move(*held_publish_);
        held_publish_.reset();
        on_method(held);
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
            if (auto* ch = find_channel(n); ch && !ch->closing()) pump_channel(*ch);
        }
    }
    if (!auto_acks_.empty()) {
        const auto now = service_.now();
        auto acks = std::move(auto_acks_);
        auto_acks_.clear();
        for (const auto& lease : acks) service_.core().ack(lease, std::nullopt, now);
    }
    bool confirms = false;
    for (const auto& [n, ch] : channels_) confirms = confirms || ch.confirms_pending();
    if (confirms && !confirm_waiting_) confirm_wake_.cancel();
    service_.deadlines_changed();
    wake_writer();
}

// The machine's timers: the handshake deadline, then heartbeats (the client picks the
// interval in tune-ok).
asio::awaitable<void> amqp_session::heartbeat_loop() {
    using tick = amqp_connection_fsm::tick_action;
    while (!reader_done_ && !closing_ && !close_after_flush_) {
        const auto wait = fsm_.tick_interval_us();
        if (!wait) co_return;
        heartbeat_timer_.expires_after(std::chrono::microseconds(*wait));
        co_await heartbeat_timer_.async_wait(use_tuple);
        if (reader_done_ || closing_) break;
        const auto now = service_.now().mono_us;
        switch (fsm_.on_tick(now, pending_out() == 0)) {
            case tick::none:
                break;
            case tick::heartbeat_sent:
                wake_writer();
                break;
            case tick::handshake_timeout:
                client_log(spdlog::level::info, client_.peer,
                           "amqp client {} ({}): handshake not done within {} ms; closing",
                           client_.id, client_.peer, service_.config().handshake_timeout_ms);
                close();
                co_return;
            case tick::missed_heartbeats:
                spdlog::info(
                    "amqp client {} ({}): missed heartbeats, nothing received for {} s "
                    "(heartbeat {} s); closing and requeueing its deliveries",
                    client_.id, client_.peer, (now - fsm_.last_read_us()) / 1000000,
                    fsm_.heartbeat_s());
                close();
                co_return;
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
            if (!ch.confirms_pending()) continue;
            any = true;
            wanted = std::max(wanted, ch.last_confirm_position());
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
        const auto released = [this](std::uint64_t p) { return service_.released(p); };
        for (auto& [n, ch] : channels_) {
            for (const auto& r : ch.take_confirms(released)) {
                if (r.ack) {
                    send(ch.number(), amqp::basic_ack{r.seq, r.multiple});
                } else {
                    send(ch.number(), amqp::basic_nack{r.seq, false, false});
                }
            }
        }
        wake_writer();
    }
}

// ---- closing connections and channels ------------------------------------------------------

void amqp_session::close_connection(amqp::reply_code code, std::string text,
                                    amqp::method_key cause) {
    if (fsm_.close(code, std::move(text), cause)) connection_closing();
}

void amqp_session::connection_closing() {
    // Deliveries stop now; what the client holds is requeued when the connection ends.
    for (auto& [n, ch] : channels_) end_channel(ch);
    channels_.clear();
    close_after_flush_ = true;
    wake_writer();
}

amqp_channel* amqp_session::find_channel(std::uint16_t number) {
    auto it = channels_.find(number);
    return it == channels_.end() ? nullptr : &it->second;
}

void amqp_session::channel_error(amqp_channel& ch, const amqp_error& e, amqp::method_key cause) {
    client_log(spdlog::level::debug, client_.peer, "amqp client {} ({}): channel {} closed: {} {}",
               client_.id, client_.peer, ch.number(), static_cast<int>(e.code), log_text(e.text));
    fsm_.channel_error(ch.number(), e.code, e.text, cause);
    end_channel(ch);
    ch.mark_closing();
}

// The channel's consumers stop and what it was delivered and did not settle is requeued
// (redelivered), as RabbitMQ does when a channel closes.
void amqp_session::end_channel(amqp_channel& ch) {
    // One at a time: removing one can delete its auto-delete queue, which cancels the other
    // consumers of that queue, on this channel too.
    while (auto* c = ch.first_consumer()) remove_consumer(ch, *c, true);
    release_unacked(ch);
    ch.clear_confirms();
}

void amqp_session::release_unacked(amqp_channel& ch) {
    if (ch.unacked_count() == 0) return;
    // Taken out first: a release can hand the task straight to a consumer of this channel,
    // whose new delivery must not be swept up here.
    const auto leases = ch.take_unacked();
    const auto now = service_.now();
    for (const auto& lease : leases) service_.core().release(lease, 0, now);
}

}  // namespace conveyor::server

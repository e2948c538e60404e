// The AMQP 0-9-1 connection as a sans-IO state machine: bytes in, frames out, events for the
// caller. It owns the protocol header check, the frame and command decoder, the connection
// class (start / start-ok / tune / tune-ok / open / close / close-ok, update-secret,
// blocked / unblocked), channel open / close / flow, and the heartbeat and handshake
// deadlines, with time as an input. It never touches a socket, a timer, a clock or the broker
// core: the session (amqp_session.cpp) reads, feeds the bytes here, runs what comes out as
// events (a login to check, a method for an open channel, a channel that ended) and writes
// what was appended to the output.
//
// Contract:
// - feed() consumes a prefix of its input (event::consumed) and returns one event; call it
//   again with the rest until it answers need_more (or paused, or done). It never throws on
//   input: bad bytes close the connection (Connection.Close with RabbitMQ's reply text).
// - Every frame it sends is appended to the output string given to the constructor.
// - While a login waits for its verdict (phase authenticating) feed() consumes nothing and
//   answers paused; login_ok() / login_refused() resume it.
#pragma once

#include <conveyor/protocol/amqp_command.hpp>
#include <conveyor/protocol/amqp_methods.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace conveyor::server {

struct amqp_connection_settings {
    // Offered in connection.tune; the client's tune-ok answer is obeyed (docs/amqp.md).
    std::uint16_t channel_max = 2047;
    std::uint32_t frame_max = protocol::amqp::default_frame_max;
    std::uint16_t heartbeat_s = 60;
    // The connection must be open this long after it started (RabbitMQ: handshake_timeout);
    // the time spent waiting for a password check does not end it.
    std::int64_t handshake_timeout_us = 10'000'000;
    protocol::amqp::connection_limits limits;  // the decoder's, before tune-ok
    std::string version;                       // server-properties "version"
};

class amqp_connection_fsm {
public:
    enum class phase : std::uint8_t {
        header,          // waiting for the protocol header
        start_ok,        // connection.start sent
        authenticating,  // start-ok received; the caller checks the credentials
        tune_ok,         // connection.tune sent
        open,            // tune-ok received, waiting for connection.open
        running,         // open-ok sent: channels may be used
        closing,         // connection.close sent, waiting for close-ok
        closed           // nothing more is decoded
    };

    enum class event_kind : std::uint8_t {
        need_more,       // every whole frame is consumed: read more
        paused,          // a login waits for its verdict (login_ok / login_refused)
        none,            // something was consumed and answered here: feed again
        login,           // start-ok: check login() and call login_ok, login_refused or close
        method,          // a method for a channel: the caller may look at the user, then
                         // calls channel_method(cmd)
        command,         // a method (with its content) for an open channel: the caller runs it
        channel_opened,  // cmd.channel is open now
        channel_ended,   // cmd.channel is gone (closed by the peer, or its close-ok came)
        body_too_large,  // a publish on open channel cmd.channel is over the body limit
        closing,         // connection.close was sent: every channel ends, output is flushed
        done             // the connection is over: write what is out, then close the socket
    };
    struct event {
        event(event_kind k = event_kind::need_more, std::size_t n = 0,
              std::optional<protocol::amqp::amqp_error> e = std::nullopt)
            : kind(k), consumed(n), error(std::move(e)) {}
        event_kind kind = event_kind::need_more;
        std::size_t consumed = 0;
        // Set with `closing` when the peer's bytes were at fault (to be logged), and with
        // `done` after an unsupported protocol header (its description).
        std::optional<protocol::amqp::amqp_error> error;
    };

    struct credentials {
        std::string mechanism;
        std::string user;
        std::string password;
    };

    enum class tick_action : std::uint8_t {
        none,
        heartbeat_sent,     // a heartbeat frame was appended to the output
        handshake_timeout,  // not open within handshake_timeout_us: drop the connection
        missed_heartbeats   // nothing read for two heartbeat intervals: drop the connection
    };

    amqp_connection_fsm(amqp_connection_settings settings, std::string& out, std::int64_t now_us);

    event feed(std::string_view bytes, protocol::amqp::command& cmd);
    // After a `method` event: channel open / close / flow are answered here (events
    // channel_opened, channel_ended, none); anything else on an open channel comes back as
    // `command`; a method on a channel not open closes the connection (504 CHANNEL_ERROR).
    event channel_method(protocol::amqp::command& cmd);

    // ---- login ----------------------------------------------------------------------------
    const credentials& login() const noexcept { return login_; }
    void login_ok();       // sends connection.tune
    void login_refused();  // 403 ACCESS_REFUSED in RabbitMQ's words

    // ---- closing --------------------------------------------------------------------------
    // Sends Channel.Close (channel exception); the channel's input is ignored until its
    // close-ok. False when the channel is not open.
    bool channel_error(std::uint16_t channel, protocol::amqp::reply_code code, std::string text,
                       protocol::amqp::method_key cause);
    // Sends Connection.Close; false when it is closing already. The caller ends every channel.
    bool close(protocol::amqp::reply_code code, std::string text,
               protocol::amqp::method_key cause = {});

    // ---- flow control ---------------------------------------------------------------------
    // connection.blocked / unblocked, to a client that announced the capability.
    void blocked(std::string_view reason);
    void unblocked();

    // ---- time -----------------------------------------------------------------------------
    void note_read(std::int64_t now_us) noexcept { last_read_us_ = now_us; }
    void note_write(std::int64_t now_us) noexcept { last_write_us_ = now_us; }
    // `output_idle`: nothing waits to be written (a heartbeat is not queued behind output).
    tick_action on_tick(std::int64_t now_us, bool output_idle);
    // How long until on_tick should run again; nullopt when it need not (open without
    // heartbeats, or closing).
    std::optional<std::int64_t> tick_interval_us() const noexcept;

    // ---- state ----------------------------------------------------------------------------
    phase current() const noexcept { return phase_; }
    bool running() const noexcept { return phase_ == phase::running; }
    bool handshaking() const noexcept { return phase_ < phase::running; }
    bool channel_open(std::uint16_t channel) const;
    std::uint32_t frame_max() const noexcept { return frame_max_; }
    std::uint16_t channel_max() const noexcept { return channel_max_; }
    std::uint16_t heartbeat_s() const noexcept { return heartbeat_s_; }
    std::int64_t last_read_us() const noexcept { return last_read_us_; }

private:
    event on_header(std::string_view bytes);
    event on_decoded(protocol::amqp::decode_step step, protocol::amqp::command& cmd);
    event on_command(protocol::amqp::command& cmd);
    event on_connection_method(protocol::amqp::command& cmd);
    event on_start_ok(const protocol::amqp::connection_start_ok& m);
    void on_tune_ok(const protocol::amqp::connection_tune_ok& m);
    event fail(const protocol::amqp::amqp_error& e);  // the peer's bytes were at fault
    event unexpected(protocol::amqp::method_key got, std::string_view expected);
    template <class M>
    void send(std::uint16_t channel, const M& m) {
        protocol::amqp::encode_method_frame(out_, channel, m);
    }

    amqp_connection_settings settings_;
    std::string& out_;
    protocol::amqp::connection_decoder decoder_;
    phase phase_ = phase::header;
    credentials login_;
    bool blocked_capability_ = false;
    std::uint32_t frame_max_ = protocol::amqp::default_frame_max;
    std::uint16_t channel_max_;
    std::uint16_t heartbeat_s_ = 0;
    // Open channels; true once Channel.Close was sent (waiting for its close-ok).
    std::map<std::uint16_t, bool> channels_;
    std::int64_t started_us_;
    std::int64_t last_read_us_;
    std::int64_t last_write_us_;
};

}  // namespace conveyor::server

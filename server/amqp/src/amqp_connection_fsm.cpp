// The AMQP connection machine (see the header). Reply texts follow RabbitMQ's.
#include <conveyor/amqp/amqp_connection_fsm.hpp>

#include <conveyor/protocol/amqp_sasl.hpp>

namespace amqp = conveyor::protocol::amqp;

namespace conveyor::server {
namespace {

constexpr std::int64_t handshake_poll_us = 100'000;

bool announces_blocked(const amqp::field_table& client_properties) {
    const auto* caps = client_properties.find("capabilities");
    const auto* table = caps ? std::get_if<amqp::field_table>(&caps->value) : nullptr;
    const auto* blocked = table ? table->find("connection.blocked") : nullptr;
    const auto* on = blocked ? std::get_if<bool>(&blocked->value) : nullptr;
    return on && *on;
}

}  // namespace

amqp_connection_fsm::amqp_connection_fsm(amqp_connection_settings settings, std::string& out,
                                         std::int64_t now_us)
    : settings_(std::move(settings)),
      out_(out),
      decoder_(amqp::peer::server, settings_.limits),
      channel_max_(settings_.channel_max),
      started_us_(now_us),
      last_read_us_(now_us),
      last_write_us_(now_us) {}

amqp_connection_fsm::event amqp_connection_fsm::feed(std::string_view bytes, amqp::command& cmd) {
    if (bytes.empty()) return {};
    switch (phase_) {
        case phase::header:
            return on_header(bytes);
        case phase::closed:  // after a framing error or the close handshake: ignored
            return {event_kind::need_more, bytes.size()};
        case phase::authenticating:
            return {event_kind::paused, 0};
        default:
            break;
    }
    const auto step = decoder_.feed(bytes, cmd);
    auto ev = on_decoded(step, cmd);
    ev.consumed = step.consumed;
    return ev;
}

amqp_connection_fsm::event amqp_connection_fsm::on_header(std::string_view bytes) {
    auto h = amqp::check_protocol_header(bytes);
    if (h.status == amqp::header_status::need_more) return {};
    if (h.status == amqp::header_status::unsupported) {
        // The spec's answer: the header of the version we speak, then close.
        out_.append(amqp::protocol_header);
        phase_ = phase::closed;
        amqp::amqp_error e;
        e.text = std::string(h.description);
        return {event_kind::done, bytes.size(), std::move(e)};
    }
    amqp::server_identity identity;
    identity.version = settings_.version;
    identity.information = "https://github.com/conveyor (AMQP 0-9-1 lite: docs/amqp.md)";
    send(0, amqp::make_connection_start(identity));
    phase_ = phase::start_ok;
    return {event_kind::none, h.consumed};
}

amqp_connection_fsm::event amqp_connection_fsm::on_decoded(amqp::decode_step step,
                                                           amqp::command& cmd) {
    switch (step.status) {
        case amqp::decode_step_status::need_more:
            return {};
        case amqp::decode_step_status::heartbeat:
            return {event_kind::none};
        case amqp::decode_step_status::error: {
            if (phase_ == phase::closing) {
                phase_ = phase::closed;
                return {event_kind::none};
            }
            auto ev = fail(decoder_.error());
            phase_ = phase::closed;
            return ev;
        }
        case amqp::decode_step_status::body_too_large:
            if (phase_ != phase::running || !channel_open(cmd.channel)) return {event_kind::none};
            return {event_kind::body_too_large};
        case amqp::decode_step_status::command:
            return on_command(cmd);
    }
    return {event_kind::none};
}

amqp_connection_fsm::event amqp_connection_fsm::on_command(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    if (phase_ == phase::closing) {
        // After Connection.Close only Close and Close-Ok count (spec 2.2.4 / connection.close).
        const bool close = std::holds_alternative<amqp::connection_close>(cmd.method);
        if (!close && !std::holds_alternative<amqp::connection_close_ok>(cmd.method))
            return {event_kind::none};
        if (close) send(0, amqp::connection_close_ok{});
        phase_ = phase::closed;
        return {event_kind::done};
    }
    if (key.class_id == 10) return on_connection_method(cmd);
    if (phase_ != phase::running) {
        close(amqp::reply_code::command_invalid,
              "COMMAND_INVALID - " + amqp::describe(key) + " before the connection was opened",
              key);
        return {event_kind::closing};
    }
    return {event_kind::method};
}

amqp_connection_fsm::event amqp_connection_fsm::unexpected(amqp::method_key got,
                                                           std::string_view expected) {
    close(amqp::reply_code::command_invalid,
          "COMMAND_INVALID - expected '" + std::string(expected) + "', got '" +
              amqp::describe(got) + "'",
          got);
    return {event_kind::closing};
}

amqp_connection_fsm::event amqp_connection_fsm::on_connection_method(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    if (std::holds_alternative<amqp::connection_close>(cmd.method)) {
        // The caller logs an unusual reply code (cmd still holds the method).
        send(0, amqp::connection_close_ok{});
        phase_ = phase::closed;
        return {event_kind::done};
    }
    switch (phase_) {
        case phase::start_ok:
            if (auto* m = std::get_if<amqp::connection_start_ok>(&cmd.method))
                return on_start_ok(*m);
            return unexpected(key, "connection.start-ok");
        case phase::tune_ok:
            if (auto* m = std::get_if<amqp::connection_tune_ok>(&cmd.method)) {
                on_tune_ok(*m);
                return {event_kind::none};
            }
            return unexpected(key, "connection.tune-ok");
        case phase::open:
            if (!std::holds_alternative<amqp::connection_open>(cmd.method))
                return unexpected(key, "connection.open");
            // One virtual host: any name is "/" (docs/amqp.md).
            send(0, amqp::connection_open_ok{});
            phase_ = phase::running;
            return {event_kind::none};
        case phase::running:
            if (std::holds_alternative<amqp::connection_update_secret>(cmd.method)) {
                send(0, amqp::connection_update_secret_ok{});
                return {event_kind::none};
            }
            if (std::holds_alternative<amqp::connection_close_ok>(cmd.method))
                return {event_kind::none};  // not closing: ignored
            close(amqp::reply_code::command_invalid,
                  "COMMAND_INVALID - " + amqp::describe(key) + " on an open connection", key);
            return {event_kind::closing};
        default:
            return unexpected(key, "connection.close");
    }
}

amqp_connection_fsm::event amqp_connection_fsm::on_start_ok(const amqp::connection_start_ok& m) {
    login_.mechanism = m.mechanism;
    blocked_capability_ = announces_blocked(m.client_properties);
    auto creds = amqp::parse_sasl_response(m.mechanism, m.response);
    if (!creds) return fail(creds.error());
    login_.user = std::move(creds->user);
    login_.password = std::move(creds->password);
    phase_ = phase::authenticating;
    return {event_kind::login};
}

void amqp_connection_fsm::login_ok() {
    if (phase_ != phase::authenticating) return;
    login_.password.clear();
    send(0, amqp::connection_tune{channel_max_, settings_.frame_max, settings_.heartbeat_s});
    phase_ = phase::tune_ok;
}

void amqp_connection_fsm::login_refused() {
    login_.password.clear();
    // RabbitMQ's wording; with authentication_failure_close the client reports it as an
    // authentication error.
    close(amqp::reply_code::access_refused,
          "ACCESS_REFUSED - Login was refused using authentication mechanism " + login_.mechanism +
              ". For details see the broker logfile.");
}

void amqp_connection_fsm::on_tune_ok(const amqp::connection_tune_ok& m) {
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
amqp_connection_fsm::event amqp_connection_fsm::fail(const amqp::amqp_error& e) {
    std::string text(amqp::reply_code_name(e.code));
    if (text.empty() || e.text.starts_with(text)) {
        text = e.text;
    } else {
        text.append(" - ").append(e.text);
    }
    close(e.code, std::move(text), e.method);
    return {event_kind::closing, 0, e};
}

bool amqp_connection_fsm::close(amqp::reply_code code, std::string text, amqp::method_key cause) {
    if (phase_ == phase::closing || phase_ == phase::closed) return false;
    send(0, amqp::connection_close{static_cast<std::uint16_t>(code), std::move(text),
                                   cause.class_id, cause.method_id});
    phase_ = phase::closing;
    channels_.clear();
    return true;
}

// ---- channels ------------------------------------------------------------------------------

bool amqp_connection_fsm::channel_open(std::uint16_t channel) const {
    auto it = channels_.find(channel);
    return it != channels_.end() && !it->second;
}

amqp_connection_fsm::event amqp_connection_fsm::channel_method(amqp::command& cmd) {
    const auto key = amqp::key_of(cmd.method);
    const auto& m = cmd.method;
    const bool close_m = std::holds_alternative<amqp::channel_close>(m);
    const bool close_ok = std::holds_alternative<amqp::channel_close_ok>(m);
    auto it = channels_.find(cmd.channel);
    if (std::holds_alternative<amqp::channel_open>(m)) {
        if (it != channels_.end()) {
            close(amqp::reply_code::channel_error, "CHANNEL_ERROR - second 'channel.open' seen",
                  key);
            return {event_kind::closing};
        }
        channels_.emplace(cmd.channel, false);
        send(cmd.channel, amqp::channel_open_ok{});
        return {event_kind::channel_opened};
    }
    if (it == channels_.end()) {
        if (close_m) send(cmd.channel, amqp::channel_close_ok{});
        if (close_m || close_ok) return {event_kind::none};
        close(amqp::reply_code::channel_error,
              "CHANNEL_ERROR - expected 'channel.open' on channel " + std::to_string(cmd.channel),
              key);
        return {event_kind::closing};
    }
    if (it->second) {
        // Waiting for Close-Ok: everything else is discarded (spec, channel.close).
        if (!close_m && !close_ok) return {event_kind::none};
        if (close_m) send(cmd.channel, amqp::channel_close_ok{});
        channels_.erase(it);
        return {event_kind::channel_ended};
    }
    if (close_m) {
        // The caller ends the channel first (its deliveries are requeued), then it is gone.
        channels_.erase(it);
        send(cmd.channel, amqp::channel_close_ok{});
        return {event_kind::channel_ended};
    }
    if (close_ok) return {event_kind::none};
    if (auto* flow = std::get_if<amqp::channel_flow>(&m)) {
        send(cmd.channel, amqp::channel_flow_ok{flow->active});
        return {event_kind::none};
    }
    return {event_kind::command};
}

bool amqp_connection_fsm::channel_error(std::uint16_t channel, amqp::reply_code code,
                                        std::string text, amqp::method_key cause) {
    auto it = channels_.find(channel);
    if (it == channels_.end() || it->second) return false;
    send(channel, amqp::make_channel_close(code, std::move(text), cause));
    decoder_.commands().close_channel(channel);
    it->second = true;
    return true;
}

// ---- flow control and time -----------------------------------------------------------------

void amqp_connection_fsm::blocked(std::string_view reason) {
    if (blocked_capability_) send(0, amqp::connection_blocked{std::string(reason)});
}

void amqp_connection_fsm::unblocked() {
    if (blocked_capability_) send(0, amqp::connection_unblocked{});
}

std::optional<std::int64_t> amqp_connection_fsm::tick_interval_us() const noexcept {
    if (handshaking()) return handshake_poll_us;
    if (phase_ == phase::running && heartbeat_s_ > 0)
        return std::int64_t{heartbeat_s_} * 1'000'000 / 2;
    return std::nullopt;
}

amqp_connection_fsm::tick_action amqp_connection_fsm::on_tick(std::int64_t now_us,
                                                              bool output_idle) {
    if (handshaking()) {
        const bool expired = now_us - started_us_ >= settings_.handshake_timeout_us;
        return expired && phase_ != phase::authenticating ? tick_action::handshake_timeout
                                                          : tick_action::none;
    }
    if (phase_ != phase::running || heartbeat_s_ == 0) return tick_action::none;
    const std::int64_t interval_us = std::int64_t{heartbeat_s_} * 1'000'000;
    if (now_us - last_read_us_ >= 2 * interval_us) return tick_action::missed_heartbeats;
    if (now_us - last_write_us_ >= interval_us / 2 && output_idle) {
        amqp::encode_heartbeat(out_);
        return tick_action::heartbeat_sent;
    }
    return tick_action::none;
}

}  // namespace conveyor::server

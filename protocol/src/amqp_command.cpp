#include "conveyor/protocol/amqp_command.hpp"

#include <utility>

namespace conveyor::protocol::amqp {

namespace {

std::string on_channel(std::uint16_t channel) {
    return " on channel " + std::to_string(channel);
}

amqp_error connection_error(reply_code code, std::string text) {
    return {code, std::move(text), true, 0, {}};
}

bool is_close(method_key key) {
    return key == channel_close::id || key == channel_close_ok::id;
}

}  // namespace

command_assembler::command_assembler(peer receiver, command_limits limits)
    : receiver_(receiver), limits_(limits) {}

void command_assembler::reset() {
    partial_.clear();
    failed_ = false;
    error_ = {};
}

bool command_assembler::in_content(std::uint16_t channel) const {
    const auto it = partial_.find(channel);
    return it != partial_.end() && !it->second.closing;
}

void command_assembler::close_channel(std::uint16_t channel) {
    partial& p = partial_[channel];
    p = partial{};
    p.closing = true;
    p.discarding = true;
}

command_status command_assembler::fail(amqp_error error, const frame& f) {
    failed_ = true;
    error_ = std::move(error);
    error_.connection_error = true;
    error_.channel = f.channel;
    return command_status::error;
}

command_status command_assembler::push(const frame& f, command& out) {
    if (failed_) {
        return command_status::error;
    }
    if (f.type == frame_type::heartbeat) {
        return command_status::heartbeat;
    }
    const std::uint32_t channel_max = limits_.channel_max == 0 ? 65535 : limits_.channel_max;
    if (f.channel > channel_max) {
        return fail(connection_error(reply_code::channel_error,
                                     "channel " + std::to_string(f.channel) +
                                         " is above channel_max " + std::to_string(channel_max)),
                    f);
    }
    switch (f.type) {
        case frame_type::method:
            return on_method(f, out);
        case frame_type::header:
            return on_header(f, out);
        default:
            return on_body(f, out);
    }
}

command_status command_assembler::on_method(const frame& f, command& out) {
    const auto found = partial_.find(f.channel);
    partial* p = found == partial_.end() ? nullptr : &found->second;
    if (p != nullptr && !p->closing) {
        const std::string due = p->header_seen ? "a body frame" : "a content header";
        return fail(connection_error(reply_code::unexpected_frame,
                                     "expected " + due + " for " + describe(key_of(p->cmd.method)) +
                                         on_channel(f.channel) + ", got a method frame"),
                    f);
    }
    auto decoded = decode_method(f.payload);
    if (!decoded) {
        return fail(decoded.error(), f);
    }
    const method_key key = key_of(*decoded);
    const peer sender = method_sender(key);
    if (sender != peer::both && sender == receiver_) {
        return fail(amqp_error{reply_code::command_invalid,
                               describe(key) + " is sent by the " +
                                   (sender == peer::server ? "server" : "client") + ", not the " +
                                   (sender == peer::server ? "client" : "server"),
                               true, 0, key},
                    f);
    }
    if (key.class_id == 10 && f.channel != 0) {
        return fail(amqp_error{reply_code::command_invalid,
                               describe(key) + on_channel(f.channel) +
                                   " (connection methods belong on channel 0)",
                               true, 0, key},
                    f);
    }
    if (key.class_id != 10 && f.channel == 0) {
        return fail(amqp_error{reply_code::channel_error,
                               describe(key) + " on channel 0 (channel 0 is for the connection)",
                               true, 0, key},
                    f);
    }
    if (p != nullptr) {  // closing: only Close and Close-Ok end it
        if (is_close(key)) {
            partial_.erase(found);
        } else if (has_content(key)) {
            return command_status::incomplete;  // its content will be dropped
        }
        out = command{f.channel, std::move(*decoded), std::nullopt, {}};
        return command_status::command;
    }
    if (has_content(key)) {
        partial& fresh = partial_[f.channel];
        fresh.cmd.channel = f.channel;
        fresh.cmd.method = std::move(*decoded);
        return command_status::incomplete;
    }
    out = command{f.channel, std::move(*decoded), std::nullopt, {}};
    return command_status::command;
}

command_status command_assembler::on_header(const frame& f, command& out) {
    if (f.channel == 0) {
        return fail(connection_error(reply_code::frame_error, "content header frame on channel 0"),
                    f);
    }
    const auto found = partial_.find(f.channel);
    if (found != partial_.end() && found->second.closing) {
        return command_status::incomplete;
    }
    if (found == partial_.end() || found->second.header_seen) {
        const std::string what =
            found == partial_.end()
                ? "no content-bearing method before it"
                : "a second header for " + describe(key_of(found->second.cmd.method));
        return fail(
            connection_error(reply_code::unexpected_frame,
                             "content header frame" + on_channel(f.channel) + " with " + what),
            f);
    }
    partial& p = found->second;
    const method_key key = key_of(p.cmd.method);
    auto header = decode_content_header(f.payload);
    if (!header) {
        amqp_error error = header.error();
        error.method = key;
        return fail(std::move(error), f);
    }
    if (header->class_id != key.class_id) {
        return fail(amqp_error{reply_code::unexpected_frame,
                               "content header of class " + std::to_string(header->class_id) +
                                   " for " + describe(key) + on_channel(f.channel),
                               true, 0, key},
                    f);
    }
    p.header_seen = true;
    p.body_left = header->body_size;
    p.cmd.header = std::move(*header);
    if (p.body_left > limits_.max_body_size) {
        p.discarding = true;
        out = command{f.channel, p.cmd.method, p.cmd.header, {}};
        return command_status::body_too_large;
    }
    if (p.body_left == 0) {
        out = std::move(p.cmd);
        partial_.erase(found);
        return command_status::command;
    }
    return command_status::incomplete;
}

command_status command_assembler::on_body(const frame& f, command& out) {
    if (f.channel == 0) {
        return fail(connection_error(reply_code::frame_error, "body frame on channel 0"), f);
    }
    const auto found = partial_.find(f.channel);
    if (found != partial_.end() && found->second.closing) {
        return command_status::incomplete;
    }
    if (found == partial_.end() || !found->second.header_seen) {
        const std::string what =
            found == partial_.end()
                ? "no content-bearing method before it"
                : "no content header yet for " + describe(key_of(found->second.cmd.method));
        return fail(connection_error(reply_code::unexpected_frame,
                                     "body frame" + on_channel(f.channel) + " with " + what),
                    f);
    }
    partial& p = found->second;
    if (f.payload.size() > p.body_left) {
        return fail(amqp_error{reply_code::frame_error,
                               "body frames" + on_channel(f.channel) + " carry more than the " +
                                   std::to_string(p.cmd.header->body_size) +
                                   " bytes the content header declared",
                               true, 0, key_of(p.cmd.method)},
                    f);
    }
    p.body_left -= f.payload.size();
    if (!p.discarding) {
        // Grows with the bytes received, never with the size the header declared.
        p.cmd.body.append(f.payload);
    }
    if (p.body_left != 0) {
        return command_status::incomplete;
    }
    const bool discarded = p.discarding;
    if (!discarded) {
        out = std::move(p.cmd);
    }
    partial_.erase(found);
    return discarded ? command_status::incomplete : command_status::command;
}

connection_decoder::connection_decoder(peer receiver, connection_limits limits)
    : frames_(limits.frame_max), commands_(receiver, limits.commands) {}

const amqp_error& connection_decoder::error() const noexcept {
    return frames_.failed() ? frames_.error() : commands_.error();
}

decode_step connection_decoder::feed(std::string_view input, command& out) {
    std::size_t consumed = 0;
    while (true) {
        frame f;
        const frame_result r = frames_.feed(input.substr(consumed), f);
        if (r.status == frame_status::need_more) {
            return {decode_step_status::need_more, consumed};
        }
        if (r.status == frame_status::error) {
            return {decode_step_status::error, consumed};
        }
        consumed += r.consumed;
        switch (commands_.push(f, out)) {
            case command_status::incomplete:
                continue;
            case command_status::command:
                return {decode_step_status::command, consumed};
            case command_status::heartbeat:
                return {decode_step_status::heartbeat, consumed};
            case command_status::body_too_large:
                return {decode_step_status::body_too_large, consumed};
            case command_status::error:
                return {decode_step_status::error, consumed};
        }
    }
}

}  // namespace conveyor::protocol::amqp

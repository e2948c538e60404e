// AMQP 0-9-1 commands: a method frame, and for basic.publish (deliver, get-ok, return when
// reading as a client) the content header and body frames that follow it, assembled into one
// command per channel (spec 4.2.6). Frames of different channels may interleave; on one
// channel a content-bearing method is followed by its header and exactly body_size bytes of
// body frames, and nothing else.
//
// command_assembler works on frames (from frame_decoder); connection_decoder chains the two
// over a byte stream and is what a session feeds. Both are sans-IO and never throw on input.
#pragma once

#include "conveyor/protocol/amqp_content.hpp"
#include "conveyor/protocol/amqp_frame.hpp"
#include "conveyor/protocol/amqp_methods.hpp"
#include "conveyor/protocol/amqp_types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace conveyor::protocol::amqp {

struct command {
    std::uint16_t channel = 0;
    amqp::method method;
    // For content-bearing methods: the header, and the whole body (empty for body size 0).
    std::optional<content_header> header;
    std::string body;
};

struct command_limits {
    // Largest body accepted (RabbitMQ: max_message_size, 128 MiB by default). A larger one is
    // reported as body_too_large, not as an error.
    std::uint64_t max_body_size = std::uint64_t{128} * 1024 * 1024;
    // Highest channel number accepted; 0 means 65535 (the spec's "no limit"). Set it to what
    // Tune-Ok negotiated. Each channel holds at most one partial command.
    std::uint16_t channel_max = 2047;
};

enum class command_status {
    incomplete,      // the frame was absorbed; more frames are needed
    command,         // `out` holds a complete command
    heartbeat,       // a heartbeat frame (the caller notes the peer is alive)
    body_too_large,  // `out` holds channel, method and header of a message whose body_size
                     // exceeds max_body_size; its body frames will be read and dropped. The
                     // broker answers as it sees fit (RabbitMQ: channel close, 406
                     // PRECONDITION_FAILED); the connection stays in sync either way.
    error,           // error() says why; sticky until reset()
};

// Assembles commands for the side `receiver` (peer::server for a broker: methods only a
// server sends are refused, and the other way round).
//
// Errors (all connection errors, spec 4.2.6 and the reply code list):
//   505 UNEXPECTED_FRAME  a method while a content header or body is due on that channel; a
//                         content header or body frame nothing announced; a header whose class
//                         differs from the method's
//   501 FRAME_ERROR       body frames carrying more bytes than the header declared; content
//                         frames on channel 0
//   503 COMMAND_INVALID   a method the receiver's peer never sends; a connection-class method
//                         on a channel other than 0
//   504 CHANNEL_ERROR     a channel above channel_max; a non-connection method on channel 0
//   and the decoding errors of decode_method() and decode_content_header().
class command_assembler {
public:
    explicit command_assembler(peer receiver = peer::server, command_limits limits = {});

    command_status push(const frame& f, command& out);

    const amqp_error& error() const noexcept { return error_; }
    void set_channel_max(std::uint16_t channel_max) noexcept { limits_.channel_max = channel_max; }
    void set_max_body_size(std::uint64_t size) noexcept { limits_.max_body_size = size; }
    const command_limits& limits() const noexcept { return limits_; }

    // True while a content header or body is due on `channel`.
    bool in_content(std::uint16_t channel) const;
    // The broker sent Channel.Close on `channel` (spec, channel.close: it then discards what
    // arrives on the channel until Close-Ok). Until Channel.Close-Ok or Channel.Close arrives on
    // it, any partial command there is forgotten, content-bearing methods and content frames are
    // dropped silently (a publish the client sent before it saw the Close), and other methods
    // are still returned for the broker to discard.
    void close_channel(std::uint16_t channel);
    void reset();

private:
    // What a channel is in the middle of; channels without an entry are idle.
    struct partial {
        command cmd;
        bool header_seen = false;
        std::uint64_t body_left = 0;
        bool discarding = false;  // body_too_large was reported, or the channel is closing
        bool closing = false;     // close_channel() was called
    };

    command_status on_method(const frame& f, command& out);
    command_status on_header(const frame& f, command& out);
    command_status on_body(const frame& f, command& out);
    command_status fail(amqp_error error, const frame& f);

    peer receiver_;
    command_limits limits_;
    std::unordered_map<std::uint16_t, partial> partial_;
    bool failed_ = false;
    amqp_error error_;
};

enum class decode_step_status {
    need_more,  // keep the unconsumed bytes, append more, feed again
    command,
    heartbeat,
    body_too_large,  // as command_status::body_too_large
    error,           // error(); send Connection.Close with it, then stop reading
};

struct decode_step {
    decode_step_status status;
    std::size_t consumed;  // drop these bytes from the buffer in every case
};

struct connection_limits {
    std::uint32_t frame_max = default_frame_max;
    command_limits commands;
};

// Frames and commands over one byte stream, after the protocol header. A session appends what
// it reads to a buffer, calls feed() until need_more, and drops `consumed` bytes each time.
class connection_decoder {
public:
    explicit connection_decoder(peer receiver = peer::server, connection_limits limits = {});

    decode_step feed(std::string_view input, command& out);

    const amqp_error& error() const noexcept;
    // After Tune-Ok: frame_max as the client answered (0: no limit) and channel_max.
    void set_frame_max(std::uint32_t frame_max) noexcept { frames_.set_frame_max(frame_max); }
    void set_channel_max(std::uint16_t channel_max) noexcept {
        commands_.set_channel_max(channel_max);
    }
    command_assembler& commands() noexcept { return commands_; }
    frame_decoder& frames() noexcept { return frames_; }

private:
    frame_decoder frames_;
    command_assembler commands_;
};

}  // namespace conveyor::protocol::amqp

// AMQP 0-9-1 content: the content header frame (class, weight, body size, property flags and
// the basic class's 14 properties) and body frames.
//
// A broker passes properties through unchanged: the header keeps the property bytes exactly as
// received (`raw_properties`, flags included), and encoding a delivery takes those bytes back,
// so headers a client set (any table value type, duplicates, odd tags) reach consumers byte for
// byte. The decoded `properties` are for the broker's own decisions (priority, expiration,
// delivery mode, reply-to, correlation id).
#pragma once

#include "conveyor/protocol/amqp_frame.hpp"
#include "conveyor/protocol/amqp_methods.hpp"
#include "conveyor/protocol/amqp_table.hpp"
#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace conveyor::protocol::amqp {

// The basic class's properties, in flag order (bit 15 = content_type ... bit 2 = cluster_id).
struct basic_properties {
    std::optional<std::string> content_type;
    std::optional<std::string> content_encoding;
    std::optional<field_table> headers;
    std::optional<std::uint8_t> delivery_mode;  // 1 transient, 2 persistent
    std::optional<std::uint8_t> priority;       // 0-9 in practice
    std::optional<std::string> correlation_id;
    std::optional<std::string> reply_to;
    std::optional<std::string> expiration;  // milliseconds, as text (RabbitMQ)
    std::optional<std::string> message_id;
    std::optional<std::uint64_t> timestamp;  // seconds since the epoch
    std::optional<std::string> type;
    std::optional<std::string> user_id;
    std::optional<std::string> app_id;
    std::optional<std::string> cluster_id;

    bool operator==(const basic_properties&) const = default;
};

inline constexpr std::uint16_t basic_class_id = 60;

struct content_header {
    std::uint16_t class_id = basic_class_id;
    std::uint16_t weight = 0;  // unused, 0 on the wire
    std::uint64_t body_size = 0;
    // Property flags followed by the property list, exactly as on the wire.
    std::string raw_properties;
    basic_properties properties;  // decoded from raw_properties when class_id is basic

    std::uint16_t property_flags() const noexcept;
    bool operator==(const content_header&) const = default;
};

// Decodes a content header frame's payload. Errors (connection errors): 501 FRAME_ERROR when
// the payload is short or has bytes after the last property; 502 SYNTAX_ERROR when the
// continuation flag (bit 0) is set (basic has 14 properties, one flag word) or a headers table
// is malformed. Properties are decoded only for the basic class; for another class they stay
// empty and raw_properties holds the rest of the payload.
amqp_result<content_header> decode_content_header(std::string_view payload);

// Decodes the flags-and-properties bytes of the basic class (raw_properties).
amqp_result<basic_properties> decode_basic_properties(std::string_view raw);
// Encodes properties into raw form (flags, then the properties present).
std::string encode_basic_properties(const basic_properties& properties);

// Appends a content header frame with the given property bytes (flags included) unchanged.
void encode_content_header(std::string& out, std::uint16_t channel, std::uint64_t body_size,
                           std::string_view raw_properties,
                           std::uint16_t class_id = basic_class_id);

// The most body bytes one body frame carries under `frame_max` (frame_max - 8), and how many
// body frames a body of `size` bytes takes: the layout encode_body_frames() writes, for
// callers that write the frames' headers and the body's bytes from separate buffers.
std::size_t body_chunk_size(std::uint32_t frame_max) noexcept;
inline std::size_t body_frame_count(std::size_t size, std::uint32_t frame_max) noexcept {
    const std::size_t chunk = body_chunk_size(frame_max);
    return (size + chunk - 1) / chunk;
}

// Appends the body as body frames of at most frame_max - 8 payload bytes each; nothing for an
// empty body (the header's body size 0 says it all).
void encode_body_frames(std::string& out, std::uint16_t channel, std::string_view body,
                        std::uint32_t frame_max);

// Appends a whole content-bearing command: the method frame (basic.deliver, basic.get-ok,
// basic.return, or basic.publish for a client), the content header with `raw_properties`, and
// the body frames. Written in one go, so the frames of one delivery never interleave with
// other frames on the channel.
template <class M>
void encode_content_command(std::string& out, std::uint16_t channel, const M& m,
                            std::string_view raw_properties, std::string_view body,
                            std::uint32_t frame_max) {
    encode_method_frame(out, channel, m);
    encode_content_header(out, channel, body.size(), raw_properties);
    encode_body_frames(out, channel, body, frame_max);
}

}  // namespace conveyor::protocol::amqp

// AMQP 0-9-1 framing, sans-IO: the protocol header a client opens with, an incremental frame
// decoder, and frame encoders that append to a caller-owned buffer.
//
// Frame layout (spec 4.2.3): type (1) | channel (2) | size (4) | payload (size) | 0xCE.
// frame_max counts all of it, so a payload holds at most frame_max - 8 bytes.
#pragma once

#include "conveyor/protocol/amqp_types.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::protocol::amqp {

// "AMQP" 0 0 9 1: the only header this codec speaks.
inline constexpr std::string_view protocol_header{"AMQP\x00\x00\x09\x01", 8};

enum class header_status {
    need_more,    // a prefix of a valid header so far; nothing consumed
    accepted,     // AMQP 0-9-1; `consumed` is 8
    unsupported,  // anything else: send `protocol_header` and close (spec 4.2.2)
};

struct header_result {
    header_status status;
    std::size_t consumed;  // 8 when accepted, else 0
    // For `unsupported`: what the peer sent, for the log, e.g. "AMQP 0-8 (AMQP\x01\x01\x08\x00)",
    // "AMQP 1.0 (AMQP\x00\x01\x00\x00)" or "not AMQP (starts 'GET /')".
    std::string description;
};

// Checks the first bytes a client sends. Decides as soon as a byte differs from the 0-9-1
// header, so a stray HTTP request is refused without waiting for eight bytes; waits for all
// eight when the prefix matches.
header_result check_protocol_header(std::string_view input);

// One frame. `payload` points into the input given to feed(): valid until the caller drops
// the consumed bytes from its buffer.
struct frame {
    frame_type type = frame_type::heartbeat;
    std::uint16_t channel = 0;
    std::string_view payload;
};

enum class frame_status {
    need_more,  // no complete frame yet; nothing consumed: keep the bytes, append, feed again
    frame,      // `out` holds a frame; drop `consumed` bytes (after using the payload)
    error,      // error() says why; a connection error, sticky until reset()
};

struct frame_result {
    frame_status status;
    std::size_t consumed;
};

// Incremental frame decoder. The caller buffers bytes as a session does (append, feed, drop
// what was consumed); a partial frame is left in the buffer, so the buffer never holds more
// than one frame_max plus one read. The decoder never allocates: the payload is a view.
//
// Checks, all connection errors: the frame type is 1, 2, 3 or 8 (501 FRAME_ERROR); the size
// fits frame_max (501, reported as soon as the 7-byte header is in, before any payload);
// the frame-end octet is 0xCE (501); a heartbeat is on channel 0 and empty (501).
class frame_decoder {
public:
    explicit frame_decoder(std::uint32_t frame_max = default_frame_max);

    frame_result feed(std::string_view input, frame& out);

    // Sets the largest frame accepted, counted as frame_max is (header and end octet
    // included), e.g. from Tune-Ok. 0 (the peer's "no limit") and anything above
    // frame_max_ceiling mean frame_max_ceiling; values below frame_min_size mean frame_min_size.
    void set_frame_max(std::uint32_t frame_max) noexcept;
    std::uint32_t frame_max() const noexcept { return frame_max_; }

    const amqp_error& error() const noexcept { return error_; }
    bool failed() const noexcept { return failed_; }
    void reset() noexcept;

private:
    frame_result fail(reply_code code, std::string text, std::uint16_t channel);

    std::uint32_t frame_max_;
    bool failed_ = false;
    amqp_error error_;
};

// The frame_max a peer's proposal means: 0 is "no limit" (frame_max_ceiling), then clamped to
// [frame_min_size, frame_max_ceiling].
std::uint32_t effective_frame_max(std::uint32_t proposed) noexcept;

// Encoders: each appends one complete frame to `out`.
void encode_frame(std::string& out, frame_type type, std::uint16_t channel,
                  std::string_view payload);
void encode_heartbeat(std::string& out);
// Appends only the 7-octet header of a frame whose `payload_size` octets and frame-end octet
// the caller sends itself (a gathered write of a body kept elsewhere).
void encode_frame_header(std::string& out, frame_type type, std::uint16_t channel,
                         std::uint32_t payload_size);

// Starts a frame whose payload the caller appends next; finish_frame() writes its size and
// the frame-end octet. Returns the offset to hand to finish_frame().
std::size_t begin_frame(std::string& out, frame_type type, std::uint16_t channel);
void finish_frame(std::string& out, std::size_t begin);

}  // namespace conveyor::protocol::amqp

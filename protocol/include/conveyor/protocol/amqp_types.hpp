// AMQP 0-9-1 basics shared by the codec's layers: frame constants, reply codes, the error a
// decoder reports (a reply code the broker can put in Connection.Close or Channel.Close, a
// text a person can act on, and whether the whole connection is lost), and a small result type.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace conveyor::protocol::amqp {

// Frame types (spec 4.2.3; the XML's frame-heartbeat is 8, the PDF's 4 is a known erratum).
enum class frame_type : std::uint8_t {
    method = 1,
    header = 2,
    body = 3,
    heartbeat = 8,
};

inline constexpr std::uint8_t frame_end = 0xCE;
// Type, channel and size before the payload, the frame-end octet after it.
inline constexpr std::uint32_t frame_header_size = 7;
inline constexpr std::uint32_t frame_overhead = frame_header_size + 1;
// The smallest frame_max a peer may negotiate (spec: frame-min-size), and the largest frame
// this codec accepts whatever was negotiated: RabbitMQ's own ceiling (rabbit.frame_max).
inline constexpr std::uint32_t frame_min_size = 4096;
inline constexpr std::uint32_t frame_max_ceiling = 128 * 1024 * 1024;
// What a server accepts before Tune-Ok has set frame_max: the default RabbitMQ proposes, and
// far more than a Start-Ok with client properties needs.
inline constexpr std::uint32_t default_frame_max = 131072;

// Reply codes (spec, constants). Channel errors close a channel; connection errors
// (3xx CONNECTION_FORCED, 5xx) close the connection.
enum class reply_code : std::uint16_t {
    reply_success = 200,
    content_too_large = 311,
    no_route = 312,
    no_consumers = 313,
    connection_forced = 320,
    invalid_path = 402,
    access_refused = 403,
    not_found = 404,
    resource_locked = 405,
    precondition_failed = 406,
    frame_error = 501,
    syntax_error = 502,
    command_invalid = 503,
    channel_error = 504,
    unexpected_frame = 505,
    resource_error = 506,
    not_allowed = 530,
    not_implemented = 540,
    internal_error = 541,
};

// The spec's name of a reply code ("NOT_FOUND", "FRAME_ERROR"); "" for a code it does not
// list. RabbitMQ starts reply texts with it: "NOT_FOUND - no queue 'q' in vhost '/'".
std::string_view reply_code_name(reply_code code) noexcept;

// Class and method ids of a method; {0, 0} stands for "no method" in an error.
struct method_key {
    std::uint16_t class_id = 0;
    std::uint16_t method_id = 0;

    constexpr std::uint32_t key() const noexcept {
        return (std::uint32_t{class_id} << 16) | method_id;
    }
    bool operator==(const method_key&) const = default;
};

// Who may send a method (spec: chassis "server" / "client").
enum class peer : std::uint8_t {
    client,  // client to server only
    server,  // server to client only
    both,
};

// An error found in the peer's bytes. `connection_error` is true when the stream can no longer
// be trusted (framing, syntax) or the spec makes it a connection exception; the broker then
// sends Connection.Close with `code`, `text` and `method` and stops reading. Otherwise it is a
// channel exception on `channel`.
struct amqp_error {
    reply_code code = reply_code::internal_error;
    std::string text;
    bool connection_error = true;
    std::uint16_t channel = 0;
    method_key method;  // the method being decoded or assembled, when known

    bool operator==(const amqp_error&) const = default;
};

// The outcome of a decoding function: a value or an amqp_error. Decoders never throw on input.
template <class T>
class amqp_result {
public:
    amqp_result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    amqp_result(amqp_error error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const amqp_error& error() const { return std::get<1>(state_); }

private:
    std::variant<T, amqp_error> state_;
};

}  // namespace conveyor::protocol::amqp

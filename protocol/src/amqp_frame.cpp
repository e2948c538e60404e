#include "conveyor/protocol/amqp_frame.hpp"

#include "amqp_wire.hpp"

#include <algorithm>
#include <utility>

namespace conveyor::protocol::amqp {

std::string_view reply_code_name(reply_code code) noexcept {
    switch (code) {
        case reply_code::reply_success:
            return "REPLY_SUCCESS";
        case reply_code::content_too_large:
            return "CONTENT_TOO_LARGE";
        case reply_code::no_route:
            return "NO_ROUTE";
        case reply_code::no_consumers:
            return "NO_CONSUMERS";
        case reply_code::connection_forced:
            return "CONNECTION_FORCED";
        case reply_code::invalid_path:
            return "INVALID_PATH";
        case reply_code::access_refused:
            return "ACCESS_REFUSED";
        case reply_code::not_found:
            return "NOT_FOUND";
        case reply_code::resource_locked:
            return "RESOURCE_LOCKED";
        case reply_code::precondition_failed:
            return "PRECONDITION_FAILED";
        case reply_code::frame_error:
            return "FRAME_ERROR";
        case reply_code::syntax_error:
            return "SYNTAX_ERROR";
        case reply_code::command_invalid:
            return "COMMAND_INVALID";
        case reply_code::channel_error:
            return "CHANNEL_ERROR";
        case reply_code::unexpected_frame:
            return "UNEXPECTED_FRAME";
        case reply_code::resource_error:
            return "RESOURCE_ERROR";
        case reply_code::not_allowed:
            return "NOT_ALLOWED";
        case reply_code::not_implemented:
            return "NOT_IMPLEMENTED";
        case reply_code::internal_error:
            return "INTERNAL_ERROR";
    }
    return "";
}

namespace {

// Printable form of a few header bytes for a log line: letters as they are, others as \xNN.
std::string printable(std::string_view bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        const auto b = static_cast<unsigned char>(c);
        if (b >= 0x20 && b < 0x7f && c != '\\') {
            out.push_back(c);
        } else {
            out += "\\x";
            out.push_back(hex[b >> 4]);
            out.push_back(hex[b & 15]);
        }
    }
    return out;
}

std::string describe_header(std::string_view input) {
    const std::string shown = printable(input.substr(0, 8));
    if (input.size() < 8 || input.substr(0, 4) != "AMQP") {
        return "not AMQP (starts '" + shown + "')";
    }
    struct known_version {
        unsigned char bytes[4];
        const char* name;
    };
    // The headers other versions open with (0-8 and 0-9 use a 1 1 prefix; 1.0 is a different
    // protocol with a protocol id in byte 4).
    static constexpr known_version known[] = {
        {{1, 1, 8, 0}, "AMQP 0-8"},
        {{1, 1, 0, 9}, "AMQP 0-9"},
        {{1, 1, 9, 1}, "AMQP 0-9-1 (pre-standard header)"},
        {{1, 1, 0, 10}, "AMQP 0-10"},
        {{0, 1, 0, 0}, "AMQP 1.0"},
        {{2, 1, 0, 0}, "AMQP 1.0 over TLS"},
        {{3, 1, 0, 0}, "AMQP 1.0 SASL"},
    };
    for (const auto& k : known) {
        if (std::string_view(reinterpret_cast<const char*>(k.bytes), 4) == input.substr(4, 4)) {
            return std::string(k.name) + " (" + shown + ")";
        }
    }
    return "unknown AMQP version (" + shown + ")";
}

}  // namespace

header_result check_protocol_header(std::string_view input) {
    const std::size_t n = std::min(input.size(), protocol_header.size());
    if (input.substr(0, n) != protocol_header.substr(0, n)) {
        // A differing byte in "AMQP" decides at once; after "AMQP" wait for the version bytes
        // (unless the input ended), so the log names the version.
        if (n < protocol_header.size() && input.substr(0, std::min<std::size_t>(n, 4)) == "AMQP") {
            return {header_status::need_more, 0, {}};
        }
        return {header_status::unsupported, 0, describe_header(input)};
    }
    if (n < protocol_header.size()) {
        return {header_status::need_more, 0, {}};
    }
    return {header_status::accepted, protocol_header.size(), {}};
}

std::uint32_t effective_frame_max(std::uint32_t proposed) noexcept {
    if (proposed == 0) {
        return frame_max_ceiling;
    }
    return std::clamp(proposed, frame_min_size, frame_max_ceiling);
}

frame_decoder::frame_decoder(std::uint32_t frame_max)
    : frame_max_(effective_frame_max(frame_max)) {}

void frame_decoder::set_frame_max(std::uint32_t frame_max) noexcept {
    frame_max_ = effective_frame_max(frame_max);
}

void frame_decoder::reset() noexcept {
    failed_ = false;
    error_ = {};
}

frame_result frame_decoder::fail(reply_code code, std::string text, std::uint16_t channel) {
    failed_ = true;
    error_ = {code, std::move(text), true, channel, {}};
    return {frame_status::error, 0};
}

frame_result frame_decoder::feed(std::string_view input, frame& out) {
    if (failed_) {
        return {frame_status::error, 0};
    }
    detail::wire_reader in(input);
    std::uint8_t type = 0;
    std::uint16_t channel = 0;
    std::uint32_t size = 0;
    if (!in.u8(type)) {
        return {frame_status::need_more, 0};
    }
    if (type != 1 && type != 2 && type != 3 && type != 8) {
        return fail(reply_code::frame_error, "unknown frame type " + std::to_string(type), 0);
    }
    if (!in.u16(channel) || !in.u32(size)) {
        return {frame_status::need_more, 0};
    }
    const auto kind = static_cast<frame_type>(type);
    if (kind == frame_type::heartbeat && channel != 0) {
        return fail(reply_code::frame_error,
                    "heartbeat frame on channel " + std::to_string(channel) +
                        " (heartbeats must be on channel 0)",
                    channel);
    }
    if (kind == frame_type::heartbeat && size != 0) {
        return fail(reply_code::frame_error,
                    "heartbeat frame with a payload of " + std::to_string(size) + " bytes",
                    channel);
    }
    if (size > frame_max_ - frame_overhead) {
        return fail(reply_code::frame_error,
                    "frame of " + std::to_string(std::uint64_t{size} + frame_overhead) +
                        " bytes on channel " + std::to_string(channel) +
                        " is larger than frame_max " + std::to_string(frame_max_),
                    channel);
    }
    std::string_view payload;
    std::uint8_t end = 0;
    if (!in.bytes(size, payload) || !in.u8(end)) {
        return {frame_status::need_more, 0};
    }
    if (end != frame_end) {
        return fail(reply_code::frame_error,
                    "frame on channel " + std::to_string(channel) + " ends with 0x" +
                        "0123456789abcdef"[end >> 4] + "0123456789abcdef"[end & 15] +
                        " instead of 0xce (wrong size field?)",
                    channel);
    }
    out = frame{kind, channel, payload};
    return {frame_status::frame, input.size() - in.remaining()};
}

std::size_t begin_frame(std::string& out, frame_type type, std::uint16_t channel) {
    const std::size_t begin = out.size();
    detail::put_u8(out, static_cast<std::uint8_t>(type));
    detail::put_u16(out, channel);
    detail::put_u32(out, 0);
    return begin;
}

void finish_frame(std::string& out, std::size_t begin) {
    const std::size_t payload = out.size() - begin - frame_header_size;
    detail::patch_u32(out, begin + 3, static_cast<std::uint32_t>(payload));
    detail::put_u8(out, frame_end);
}

void encode_frame_header(std::string& out, frame_type type, std::uint16_t channel,
                         std::uint32_t payload_size) {
    detail::put_u8(out, static_cast<std::uint8_t>(type));
    detail::put_u16(out, channel);
    detail::put_u32(out, payload_size);
}

void encode_frame(std::string& out, frame_type type, std::uint16_t channel,
                  std::string_view payload) {
    encode_frame_header(out, type, channel, static_cast<std::uint32_t>(payload.size()));
    out.append(payload);
    detail::put_u8(out, frame_end);
}

void encode_heartbeat(std::string& out) {
    encode_frame(out, frame_type::heartbeat, 0, {});
}

}  // namespace conveyor::protocol::amqp

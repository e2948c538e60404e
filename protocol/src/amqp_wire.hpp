// Internal to protocol/: big-endian reading and writing of AMQP's primitive types. The reader
// works on one complete frame payload (bounded by frame_max), so it never needs more input:
// running out of bytes is a malformed frame.
#pragma once

#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace conveyor::protocol::amqp::detail {

class wire_reader {
public:
    explicit wire_reader(std::string_view input) : input_(input) {}

    std::size_t remaining() const noexcept { return input_.size() - pos_; }
    bool at_end() const noexcept { return pos_ == input_.size(); }
    std::string_view rest() const noexcept { return input_.substr(pos_); }

    // Each returns false, consuming nothing, when fewer bytes remain than the value needs.
    bool u8(std::uint8_t& v) { return fixed(v); }
    bool u16(std::uint16_t& v) { return fixed(v); }
    bool u32(std::uint32_t& v) { return fixed(v); }
    bool u64(std::uint64_t& v) { return fixed(v); }
    bool bytes(std::size_t n, std::string_view& out) {
        if (remaining() < n) {
            return false;
        }
        out = input_.substr(pos_, n);
        pos_ += n;
        return true;
    }
    bool shortstr(std::string_view& out) {
        std::uint8_t n = 0;
        const std::size_t start = pos_;
        if (!u8(n) || !bytes(n, out)) {
            pos_ = start;
            return false;
        }
        return true;
    }
    bool longstr(std::string_view& out) {
        std::uint32_t n = 0;
        const std::size_t start = pos_;
        if (!u32(n) || !bytes(n, out)) {
            pos_ = start;
            return false;
        }
        return true;
    }

private:
    template <class T>
    bool fixed(T& v) {
        if (remaining() < sizeof(T)) {
            return false;
        }
        T value = 0;
        for (std::size_t i = 0; i < sizeof(T); ++i) {
            value = static_cast<T>((value << 8) | static_cast<unsigned char>(input_[pos_ + i]));
        }
        pos_ += sizeof(T);
        v = value;
        return true;
    }

    std::string_view input_;
    std::size_t pos_ = 0;
};

inline void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}
inline void put_u16(std::string& out, std::uint16_t v) {
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v));
}
inline void put_u32(std::string& out, std::uint32_t v) {
    put_u16(out, static_cast<std::uint16_t>(v >> 16));
    put_u16(out, static_cast<std::uint16_t>(v));
}
inline void put_u64(std::string& out, std::uint64_t v) {
    put_u32(out, static_cast<std::uint32_t>(v >> 32));
    put_u32(out, static_cast<std::uint32_t>(v));
}
// A shortstr holds at most 255 bytes; longer text (only ever from the broker itself, e.g. a
// reply text) is cut there rather than producing a frame the peer cannot parse.
inline void put_shortstr(std::string& out, std::string_view s) {
    if (s.size() > 255) {
        s = s.substr(0, 255);
    }
    put_u8(out, static_cast<std::uint8_t>(s.size()));
    out.append(s);
}
inline void put_longstr(std::string& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}
// Overwrites 4 bytes at `at` (a length written before its content was known).
inline void patch_u32(std::string& out, std::size_t at, std::uint32_t v) {
    out[at] = static_cast<char>(v >> 24);
    out[at + 1] = static_cast<char>(v >> 16);
    out[at + 2] = static_cast<char>(v >> 8);
    out[at + 3] = static_cast<char>(v);
}

inline amqp_error frame_error(std::string text) {
    return {reply_code::frame_error, std::move(text), true, 0, {}};
}
inline amqp_error syntax_error(std::string text) {
    return {reply_code::syntax_error, std::move(text), true, 0, {}};
}

}  // namespace conveyor::protocol::amqp::detail

// Shared by the AMQP codec tests: hex literals, and a connection_decoder fed as a session feeds
// it (append, feed until need_more, drop consumed bytes), whole, split at every point and
// byte by byte.
#pragma once

#include "conveyor/protocol/amqp_command.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::protocol::amqp::test {

inline std::string from_hex(std::string_view hex) {
    std::string out;
    auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
    }
    return out;
}

inline std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        out.push_back(digits[static_cast<unsigned char>(c) >> 4]);
        out.push_back(digits[static_cast<unsigned char>(c) & 15]);
    }
    return out;
}

// One event a connection_decoder reported, re-encoded so that outcomes compare as text.
struct event {
    decode_step_status status;
    std::uint16_t channel = 0;
    std::string method;  // the method payload, hex
    std::string header;  // raw properties and body size, hex, when there is a header
    std::string body;
    bool operator==(const event&) const = default;
};

struct outcome {
    std::vector<event> events;
    amqp_error error;  // when the last status was error
    std::size_t pending = 0;
    bool operator==(const outcome&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const outcome& o) {
    for (const auto& e : o.events) {
        os << "[" << static_cast<int>(e.status) << " ch " << e.channel << " " << e.method << " "
           << e.header << " body " << e.body.size() << "] ";
    }
    return os << "error " << static_cast<int>(o.error.code) << " '" << o.error.text << "' pending "
              << o.pending;
}

inline outcome decode_chunks(const std::vector<std::string_view>& chunks,
                             connection_limits limits = {}, peer receiver = peer::server) {
    connection_decoder decoder(receiver, limits);
    std::string buffer;
    outcome out;
    for (const std::string_view chunk : chunks) {
        buffer.append(chunk);
        while (true) {
            command cmd;
            const decode_step step = decoder.feed(buffer, cmd);
            EXPECT_LE(step.consumed, buffer.size());
            buffer.erase(0, step.consumed);
            if (step.status == decode_step_status::need_more) {
                break;
            }
            if (step.status == decode_step_status::error) {
                out.error = decoder.error();
                out.events.push_back({step.status, 0, {}, {}, {}});
                return out;
            }
            event e{step.status, cmd.channel, {}, {}, cmd.body};
            if (step.status != decode_step_status::heartbeat) {
                std::string payload;
                encode_method(payload, cmd.method);
                e.method = to_hex(payload);
            }
            if (cmd.header) {
                e.header = std::to_string(cmd.header->body_size) + ":" +
                           to_hex(cmd.header->raw_properties);
            }
            out.events.push_back(std::move(e));
        }
    }
    out.pending = buffer.size();
    return out;
}

inline outcome decode_whole(std::string_view input, connection_limits limits = {},
                            peer receiver = peer::server) {
    return decode_chunks({input}, limits, receiver);
}

// The outcome of `input` whole; asserts that every split in two, and byte-by-byte feeding,
// give the same.
inline outcome decode_at_every_split(std::string_view input, connection_limits limits = {},
                                     peer receiver = peer::server) {
    const outcome whole = decode_whole(input, limits, receiver);
    for (std::size_t i = 0; i <= input.size(); ++i) {
        EXPECT_EQ(decode_chunks({input.substr(0, i), input.substr(i)}, limits, receiver), whole)
            << "split at " << i;
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < input.size(); ++i) {
        bytes.push_back(input.substr(i, 1));
    }
    EXPECT_EQ(decode_chunks(bytes, limits, receiver), whole) << "byte by byte";
    return whole;
}

}  // namespace conveyor::protocol::amqp::test

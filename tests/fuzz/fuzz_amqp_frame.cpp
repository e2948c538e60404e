// libFuzzer target for the AMQP 0-9-1 codec: the input is a client's byte stream after the
// protocol header, fed through connection_decoder (frames, methods, content headers, field
// tables, command assembly) as a broker reads it and as a client reads it. Checks beyond "no
// crash, no sanitizer report": the same events (and error) whole as split at points derived
// from the input, and everything decoded re-encodes to bytes that decode to the same thing
// (methods and properties on their own, and each command written back as frames).
#include "conveyor/protocol/amqp_command.hpp"
#include "conveyor/protocol/amqp_sasl.hpp"

#include "split_points.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace conveyor::protocol::amqp;

void check(bool ok) {
    if (!ok) {
        __builtin_trap();
    }
}

// encode(decode(encode(m))) == encode(m): what the encoder writes decodes to the same method.
std::string checked_method_bytes(const method& m) {
    std::string bytes;
    encode_method(bytes, m);
    const auto again = decode_method(bytes);
    check(again.has_value());
    std::string twice;
    encode_method(twice, *again);
    check(twice == bytes);
    return bytes;
}

std::string checked_properties(const content_header& h) {
    if (h.class_id != basic_class_id) {
        return h.raw_properties;
    }
    const std::string bytes = encode_basic_properties(h.properties);
    const auto again = decode_basic_properties(bytes);
    check(again.has_value());
    check(encode_basic_properties(*again) == bytes);
    return h.raw_properties;
}

// Start-Ok carries a SASL response: parse it as the broker will.
void parse_credentials(const method& m) {
    if (const auto* start_ok = std::get_if<connection_start_ok>(&m)) {
        (void)parse_sasl_response(start_ok->mechanism, start_ok->response);
        (void)parse_amqplain_response(start_ok->response);
    }
}

// Small limits, so that every limit is reachable from short inputs.
connection_limits small_limits() {
    connection_limits limits;
    limits.frame_max = frame_min_size;
    limits.commands.max_body_size = 8192;
    limits.commands.channel_max = 16;
    return limits;
}

// Writes a decoded command back as frames (a body split at frame_max) and checks that a fresh
// decoder reads it back as one identical command.
void check_reencoded(const command& cmd, decode_step_status status, peer receiver) {
    std::string bytes;
    if (status == decode_step_status::heartbeat) {
        encode_heartbeat(bytes);
    } else {
        std::visit([&](const auto& m) { encode_method_frame(bytes, cmd.channel, m); }, cmd.method);
        if (cmd.header) {
            encode_content_header(bytes, cmd.channel, cmd.header->body_size,
                                  cmd.header->raw_properties, cmd.header->class_id);
            encode_body_frames(bytes, cmd.channel, cmd.body, frame_min_size);
        }
    }
    connection_decoder decoder(receiver, small_limits());
    command again;
    const decode_step step = decoder.feed(bytes, again);
    check(step.status == status && step.consumed == bytes.size());
    if (status == decode_step_status::heartbeat) {
        return;
    }
    // Compared as bytes: a NaN in a table is not equal to itself.
    std::string method_bytes;
    std::string again_bytes;
    encode_method(method_bytes, cmd.method);
    encode_method(again_bytes, again.method);
    check(again.channel == cmd.channel && again_bytes == method_bytes && again.body == cmd.body);
    check(again.header.has_value() == cmd.header.has_value());
    if (cmd.header) {
        check(again.header->raw_properties == cmd.header->raw_properties);
        check(again.header->body_size == cmd.header->body_size);
    }
}

struct outcome {
    std::vector<std::string> events;
    std::string error;
    bool operator==(const outcome&) const = default;
};

outcome decode(const std::vector<std::string_view>& chunks, peer receiver) {
    connection_decoder decoder(receiver, small_limits());
    std::string buffer;
    outcome out;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        while (true) {
            command cmd;
            const decode_step step = decoder.feed(buffer, cmd);
            check(step.consumed <= buffer.size());
            buffer.erase(0, step.consumed);
            if (step.status == decode_step_status::need_more) {
                break;
            }
            if (step.status == decode_step_status::error) {
                out.error = std::to_string(static_cast<int>(decoder.error().code)) + " " +
                            decoder.error().text;
                return out;
            }
            if (step.status == decode_step_status::body_too_large) {
                // As a broker would: refuse the message by closing its channel.
                decoder.commands().close_channel(cmd.channel);
            } else {
                check_reencoded(cmd, step.status, receiver);
            }
            std::string e = std::to_string(static_cast<int>(step.status)) + "/" +
                            std::to_string(cmd.channel) + "/";
            if (step.status != decode_step_status::heartbeat) {
                e += checked_method_bytes(cmd.method);
                parse_credentials(cmd.method);
            }
            if (cmd.header) {
                e += "/" + std::to_string(cmd.header->body_size) + "/" +
                     checked_properties(*cmd.header);
            }
            out.events.push_back(e + "/" + cmd.body);
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    (void)check_protocol_header(input);
    const auto chunks = conveyor::fuzz::split_at_random_points(input);
    for (const peer receiver : {peer::server, peer::client}) {
        check(decode({input}, receiver) == decode(chunks, receiver));
    }
    return 0;
}

// libFuzzer target for the AMQP 0-9-1 codec: the input is a client's byte stream after the
// protocol header, fed through connection_decoder (frames, methods, content headers, field
// tables, command assembly) as a broker reads it and as a client reads it. Checks beyond "no
// crash, no sanitizer report": the same events (and error) whole as split at points derived
// from the input, and everything decoded re-encodes to bytes that decode to the same thing.
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

struct outcome {
    std::vector<std::string> events;
    std::string error;
    bool operator==(const outcome&) const = default;
};

outcome decode(const std::vector<std::string_view>& chunks, peer receiver) {
    // Small limits, so that every limit is reachable from short inputs.
    connection_limits limits;
    limits.frame_max = frame_min_size;
    limits.commands.max_body_size = 8192;
    limits.commands.channel_max = 16;
    connection_decoder decoder(receiver, limits);
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
            if (step.status == decode_step_status::body_too_large) {
                // As a broker would: refuse the message by closing its channel.
                decoder.commands().close_channel(cmd.channel);
            }
            if (step.status == decode_step_status::error) {
                out.error = std::to_string(static_cast<int>(decoder.error().code)) + " " +
                            decoder.error().text;
                return out;
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

// libFuzzer target for the RESP request decoder: every input must decode without a crash or a
// sanitizer report, and give the same requests (and error) whole as split at points derived from
// the input.
#include "conveyor/protocol/resp_decoder.hpp"

#include "split_points.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace conveyor::protocol;

struct outcome {
    std::vector<std::vector<std::string>> requests;
    std::string error;
    bool operator==(const outcome&) const = default;
};

// Feeds the chunks in order, as a session does: buffer, feed, drop consumed bytes.
// `unauthenticated`: the pre-AUTH wording, switched to the normal limits after the first
// request, as a session does after a successful AUTH.
outcome decode(const std::vector<std::string_view>& chunks, bool unauthenticated) {
    // Small limits, so that every limit is reachable from short inputs.
    const resp_limits normal{
        .max_bulk_len = 4096, .max_args = 64, .max_inline_len = 256, .max_request_bytes = 8192};
    resp_limits first = normal;
    if (unauthenticated) {
        first = {.max_bulk_len = 64,
                 .max_args = 4,
                 .max_inline_len = 64,
                 .max_request_bytes = 512,
                 .unauthenticated = true};
    }
    resp_request_decoder decoder(first);
    std::vector<std::string> args;
    std::string buffer;
    outcome out;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        for (auto result = decoder.feed(buffer, args);; result = decoder.feed(buffer, args)) {
            buffer.erase(0, result.consumed);
            if (result.status == decode_status::error) {
                out.error = decoder.error_message();
                return out;
            }
            if (result.status == decode_status::need_more) {
                break;
            }
            out.requests.push_back(args);
            if (unauthenticated && out.requests.size() == 1) {
                decoder.set_limits(normal);
            }
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto split = conveyor::fuzz::split_at_random_points(input);
    for (const bool unauthenticated : {false, true}) {
        if (!(decode({input}, unauthenticated) == decode(split, unauthenticated))) {
            __builtin_trap();
        }
    }
    return 0;
}

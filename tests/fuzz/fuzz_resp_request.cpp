// libFuzzer target for the RESP request decoder: every input must decode without a crash or a
// sanitizer report, and give the same requests (and error) whole as split at points derived from the input.
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
outcome decode(const std::vector<std::string_view>& chunks) {
    // Small limits, so that every limit is reachable from short inputs.
    resp_request_decoder decoder({.max_bulk_len = 4096, .max_args = 64, .max_inline_len = 256});
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
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (!(decode({input}) == decode(conveyor::fuzz::split_at_random_points(input)))) {
        __builtin_trap();
    }
    return 0;
}

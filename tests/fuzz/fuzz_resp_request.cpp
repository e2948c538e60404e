// libFuzzer target for the RESP request decoder: every input must decode without a crash or a
// sanitizer report, and give the same requests (and error) whole as split in two.
#include "conveyor/protocol/resp_decoder.hpp"

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

// Feeds input[0, split) then the rest, as a session does: buffer, feed, drop consumed bytes.
outcome decode(std::string_view input, std::size_t split) {
    // Small limits, so that every limit is reachable from short inputs.
    resp_request_decoder decoder({.max_bulk_len = 4096, .max_args = 64, .max_inline_len = 256});
    std::vector<std::string> args;
    std::string buffer;
    outcome out;
    for (const auto chunk : {input.substr(0, split), input.substr(split)}) {
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
    const std::size_t split = size == 0 ? 0 : (data[0] * 131u + data[size - 1]) % (size + 1);
    if (!(decode(input, size) == decode(input, split))) {
        __builtin_trap();
    }
    return 0;
}

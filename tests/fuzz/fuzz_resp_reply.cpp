// libFuzzer target for the RESP2/RESP3 reply decoder: every input must decode without a crash
// or a sanitizer report, and give the same replies (and error) whole as split at points derived
// from the input.
#include "conveyor/protocol/resp_reply_decoder.hpp"

#include "split_points.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace conveyor::protocol;

// A canonical rendering of a reply tree (a double by its text: NaN != NaN).
void render(const resp_value& v, std::string& out) {
    out += std::to_string(static_cast<int>(v.type)) + ':' + std::to_string(v.text.size()) + ':' +
           v.text + v.format + ':' + std::to_string(v.integer) + '[';
    for (const auto& e : v.attributes) {
        render(e, out);
    }
    out += '|';
    for (const auto& e : v.elements) {
        render(e, out);
    }
    out += ']';
}

// Feeds the chunks in order, as a client does: buffer, feed, drop consumed bytes.
std::string decode(const std::vector<std::string_view>& chunks) {
    // Small limits, so that every limit is reachable from short inputs.
    resp_reply_decoder decoder(
        {.max_depth = 8, .max_aggregate_len = 64, .max_bulk_len = 4096, .max_line_len = 256});
    resp_value reply;
    std::string buffer;
    std::string out;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        for (auto result = decoder.feed(buffer, reply);; result = decoder.feed(buffer, reply)) {
            buffer.erase(0, result.consumed);
            if (result.status == reply_status::error) {
                return out + "error:" + decoder.error_message();
            }
            if (result.status == reply_status::need_more) {
                break;
            }
            render(reply, out);
        }
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    if (decode({input}) != decode(conveyor::fuzz::split_at_random_points(input))) {
        __builtin_trap();
    }
    return 0;
}

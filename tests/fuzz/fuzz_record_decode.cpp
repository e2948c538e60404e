// libFuzzer target for the storage decoders: the record codec and the segment scanner. Every
// input must decode or fail without a crash or sanitizer report; a decoded record must
// re-encode to bytes that decode to the same encoding; the scanner must stay within the input,
// and a clean end leave nothing but zeros (preallocated space) after the last frame.
#include "conveyor/storage/log_format.hpp"
#include "conveyor/storage/record_codec.hpp"
#include "conveyor/storage/segment_scanner.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace conveyor::storage;

void check_record(std::string_view input) {
    const decode_result d = decode(input);
    if (validate(input) != d.error) __builtin_trap();
    if (!d.ok()) {
        if (d.error_offset > input.size()) __builtin_trap();
        return;
    }
    std::string once;
    encode(d.record, once);
    const decode_result again = decode(once);
    std::string twice;
    encode(again.record, twice);
    if (!again.ok() || once != twice || once.size() > input.size()) __builtin_trap();
}

// The input as the frames of a segment with a good header; small frame limit so that the
// limit is reachable.
void check_segment(std::string_view input) {
    std::string file;
    append_segment_header(1, file);
    file.append(input);
    const scan_result scan = scan_segment(file, {.max_frame_len = 4096});
    if (scan.valid_end > file.size() || scan.valid_end < segment_header_size) __builtin_trap();
    // A clean end may be followed by zeros only: the writer's preallocated space.
    if (scan.end == scan_status::clean_end &&
        file.find_first_not_of('\0', scan.valid_end) != std::string::npos)
        __builtin_trap();
    if (scan.end == scan_status::damaged) {
        const drop_estimate drop =
            estimate_dropped(file, scan.error_offset, {.max_frame_len = 4096});
        if (drop.bytes != file.size() - scan.error_offset) __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    check_record(input);
    check_segment(input);
    return 0;
}

#include <conveyor/runtime/queue_name.hpp>

#include <algorithm>

namespace conveyor::server {

std::optional<std::string_view> queue_name_problem(std::string_view name) noexcept {
    if (name.empty()) return "queue name must not be empty";
    if (name.size() > max_queue_name_bytes) {
        return "queue name is longer than 255 bytes (queue names are 1-255 bytes, without "
               "control bytes)";
    }
    const bool control = std::any_of(name.begin(), name.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b < 0x20 || b == 0x7F;
    });
    if (control) {
        return "queue name contains a control byte (0x00-0x1F or 0x7F; queue names are 1-255 "
               "bytes, without control bytes)";
    }
    return std::nullopt;
}

}  // namespace conveyor::server

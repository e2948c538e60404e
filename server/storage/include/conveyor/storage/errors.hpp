// Error codes of the storage layer. I/O failures keep their errno (std::system_category);
// these are the storage layer's own conditions.
#pragma once

#include <system_error>

namespace conveyor::storage {

enum class storage_errc {
    log_failed = 1,    // an earlier write/fsync failed: the writer refuses every append (fail-stop)
    not_open,          // append/flush before open()
    already_open,      // open() on a writer that has a segment open
    record_too_large,  // the encoded record exceeds the maximum frame length
    bad_record,        // the record could not be encoded (a valueless variant)
    no_space,          // the disk had no room for a new segment or for space ahead (ENOSPC,
                       // EDQUOT): nothing was lost, the writer stays usable
};

const std::error_category& storage_category() noexcept;

inline std::error_code make_error_code(storage_errc e) noexcept {
    return {static_cast<int>(e), storage_category()};
}

}  // namespace conveyor::storage

template <>
struct std::is_error_code_enum<conveyor::storage::storage_errc> : std::true_type {};

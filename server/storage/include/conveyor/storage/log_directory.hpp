// Recovery of a whole log directory: every segment file (<20-digit sequence>.log), in sequence
// order, read with segment_scanner. Other files in the directory are ignored.
//
// How the directory ends (the outcome):
//   clean      every segment ends exactly after a good frame (or a directory with no segments).
//   torn_tail  the newest segment ends in a torn tail (segment_scanner.hpp): start-up keeps
//              every record before `offset` and truncates the file there.
//   damage     anything else: a bad frame followed by good data, a bad header, a header whose
//              sequence differs from the file name, a torn tail in a segment that is not the
//              newest (it was rotated after its last fsync, so its end must be whole), or a
//              gap in the sequence numbers. Records after the damage would be lost, so the
//              server must refuse to start; `repair_log_directory` cuts them off.
//
// Records are handed to a callback in log order and are never collected, so recovering a
// large log does not hold every record in memory. Only records before the torn tail or the
// damage are delivered. Each segment file is read whole into memory, one at a time.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/file_io.hpp"
#include "conveyor/storage/segment_scanner.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace conveyor::storage {

using record_callback = std::function<void(const core::record&)>;

// One segment file as found on disk.
struct segment_summary {
    std::string path;
    std::uint64_t sequence = 0;  // from the file name
    std::size_t records = 0;     // good records before the segment's end or its first bad frame
    std::size_t bytes = 0;       // file size
    std::size_t zero_tail = 0;   // zeros after the last record (preallocated, never written)
    // The segment comes after the damage: none of its records was delivered, and `records`
    // counts the good frames found in it (as estimate_dropped does).
    bool after_damage = false;
};

struct log_clean {};

struct log_torn_tail {
    std::string path;
    std::size_t offset = 0;         // truncate here; below segment_header_size: remove the file
    std::size_t bytes_dropped = 0;  // file size - offset
};

struct log_damage {
    std::string path;  // the damaged segment; for a gap, the first segment after it
    std::size_t offset = 0;
    std::string reason;                      // a sentence for a person, without the path and offset
    std::size_t records_after_estimate = 0;  // good records that repair would drop
    std::size_t bytes_after = 0;             // bytes that repair would drop
};

using log_outcome = std::variant<log_clean, log_torn_tail, log_damage>;

struct directory_scan {
    // Set when the directory could not be listed or a segment could not be read; the other
    // fields are then incomplete. `error_path` names what failed.
    std::error_code error;
    std::string error_path;
    std::vector<segment_summary> segments;  // in sequence order
    std::size_t records = 0;                // delivered to the callback
    log_outcome outcome = log_clean{};

    bool ok() const noexcept { return !error; }
};

// Segment files of `dir` sorted by sequence, as full paths. Fails when `dir` cannot be listed
// (missing, not a directory, no permission).
io_result<std::vector<std::pair<std::uint64_t, std::string>>> list_segments(const std::string& dir);

// Scans every segment of `dir` in order, calling `on_record` (may be empty) for each record
// that recovery keeps. Never modifies the directory.
directory_scan scan_log_directory(file_io& io, const std::string& dir,
                                  const record_callback& on_record = {}, scan_options options = {});

struct repair_result {
    std::error_code error;  // the directory was left as far as the failed step
    std::string error_path;
    log_outcome before = log_clean{};  // what the scan before the repair found
    std::size_t records_dropped = 0;   // estimated as by the scanner's estimate_dropped
    std::size_t bytes_dropped = 0;
    std::size_t files_removed = 0;

    bool ok() const noexcept { return !error; }
};

// Cuts the log at its first bad frame: truncates that segment there (file_io::truncate, which
// syncs) or removes it when the cut falls inside its header, removes every later segment, then
// syncs the directory. A torn tail is cut the same way; a clean log is left untouched.
// Afterwards scan_log_directory reports the directory clean.
repair_result repair_log_directory(file_io& io, const std::string& dir, scan_options options = {});

}  // namespace conveyor::storage

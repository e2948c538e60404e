// Shared helpers for the storage tests: sample records of every type, log building, temp dirs.
#pragma once

#include "conveyor/core/records.hpp"
#include "conveyor/storage/log_format.hpp"
#include "conveyor/storage/record_codec.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace storage_test {

using namespace conveyor;
using i64 = std::numeric_limits<std::int64_t>;

// One record of every type with ordinary values, then every type again with edge values:
// empty strings, binary bytes including \0, int64 min/max, negative numbers. Enqueues come
// in both on-disk forms: without properties (tag 1) and with them (tag 14).
inline std::vector<core::record> sample_records() {
    const core::instant t{1'234'567'890, 1'700'000'000'000};
    const core::instant edge{i64::max(), i64::min()};
    const std::string binary("a\0b\xff\x80\x7f\0", 7);
    std::vector<core::record> out{
        core::rec_enqueue{t, "task-1", "emails", "send", "{\"to\":\"x\"}", 3, 0, 5, 1000, 600000,
                          30000, 0, false, ""},
        core::rec_enqueue{t, "task-7", "amqp", "", "body", 0, 0, 3, 1000, 600000, 0, 0, false,
                          std::string("\x80\x00\x0atext/plain\x03", 14) + "ex1\x03key"},
        core::rec_lease{t, "task-1", 1, 2'000'000'000, 30000},
        core::rec_lease{t, "task-7", 2, 1'802'000'000'000, 1'800'000, true},  // AMQP: tag 15
        core::rec_ack{t, "task-1", "done"},
        core::rec_fail{t, "task-1", "boom", false, 5'000'000, true},
        core::rec_release{t, "task-1", 0},
        core::rec_extend{t, "task-1", 3'000'000'000},
        core::rec_cancel{t, "task-2"},
        core::rec_ttl_expired{t, "task-3"},
        core::rec_requeue{t, "task-4"},
        core::rec_pop{t, "task-5"},
        core::rec_forget{t, "task-6"},
        core::rec_purge{t, "emails"},
        core::rec_delete_queue{t, "emails"},
    };
    const std::vector<core::record> edges{
        core::rec_enqueue{edge, "", "", "", binary, std::numeric_limits<int>::min(), i64::min(),
                          std::numeric_limits<int>::max(), i64::max(), -1, i64::min(), -42, true,
                          ""},
        core::rec_enqueue{
            {}, binary, std::string(300, 'q'), binary, "", -1, -1, -1, 0, 0, 0, 0, false, ""},
        core::rec_enqueue{edge, "", "", "", "", 0, 0, 0, 0, 0, 0, 0, true, binary},
        core::rec_enqueue{{}, "p", "q", "", "", 0, 0, 0, 0, 0, 0, 0, false, std::string(200, 'h')},
        core::rec_lease{edge, binary, std::numeric_limits<std::uint32_t>::max(), i64::min(),
                        i64::max()},
        core::rec_lease{edge, binary, std::numeric_limits<std::uint32_t>::max(), i64::min(),
                        i64::max(), true},
        core::rec_ack{edge, "", binary},
        core::rec_fail{edge, binary, "", true, i64::max(), false},
        core::rec_release{edge, "", -1},
        core::rec_extend{edge, binary, i64::min()},
        core::rec_cancel{edge, ""},
        core::rec_ttl_expired{edge, binary},
        core::rec_requeue{{-1, -1}, ""},
        core::rec_pop{edge, std::string(1, '\0')},
        core::rec_forget{edge, ""},
        core::rec_purge{edge, ""},
        core::rec_delete_queue{edge, binary},
    };
    out.insert(out.end(), edges.begin(), edges.end());
    return out;
}

inline std::string encoded(const core::record& r) {
    std::string out;
    storage::encode(r, out);
    return out;
}

// Records are equal when their type and encodings are: the encoding covers every field.
inline bool same_record(const core::record& a, const core::record& b) {
    return a.index() == b.index() && encoded(a) == encoded(b);
}

struct built_log {
    std::string bytes;
    std::vector<std::size_t> frame_offsets;  // where each frame starts
};

inline built_log build_log(const std::vector<core::record>& records, std::uint64_t seq = 7) {
    built_log log;
    storage::append_segment_header(seq, log.bytes);
    for (const auto& r : records) {
        log.frame_offsets.push_back(log.bytes.size());
        storage::append_frame(encoded(r), log.bytes);
    }
    return log;
}

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class temp_dir {
public:
    temp_dir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "conveyor-storage-XXXXXX");
        if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

}  // namespace storage_test

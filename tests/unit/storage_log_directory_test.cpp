#include "conveyor/storage/log_directory.hpp"

#include "conveyor/storage/segment_writer.hpp"
#include "storage_fixture.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace {

using namespace conveyor;
using namespace conveyor::storage;
using storage_test::build_log;
using storage_test::built_log;
using storage_test::same_record;
using storage_test::sample_records;
using storage_test::temp_dir;

class storage_log_directory : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

    std::string path_of(std::uint64_t seq) const {
        return dir_.path() + "/" + segment_file_name(seq);
    }

    // Writes segment `seq` holding records_[from, to) and returns its layout.
    built_log write_segment(std::uint64_t seq, std::size_t from, std::size_t to) {
        const std::vector<core::record> part(records_.begin() + static_cast<long>(from),
                                             records_.begin() + static_cast<long>(to));
        built_log log = build_log(part, seq);
        write_file(path_of(seq), log.bytes);
        return log;
    }

    static void write_file(const std::string& path, const std::string& bytes) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        ASSERT_TRUE(out.good()) << path;
    }

    // Three segments 1..3 with records [0,8), [8,16), [16,n).
    void write_three_segments() {
        logs_.push_back(write_segment(1, 0, 8));
        logs_.push_back(write_segment(2, 8, 16));
        logs_.push_back(write_segment(3, 16, records_.size()));
    }

    directory_scan scan() {
        seen_.clear();
        return scan_log_directory(posix_, dir_.path(),
                                  [this](const core::record& r) { seen_.push_back(r); });
    }

    void expect_seen_prefix(std::size_t count) {
        ASSERT_EQ(seen_.size(), count);
        for (std::size_t i = 0; i < count; ++i) {
            EXPECT_TRUE(same_record(seen_[i], records_[i])) << "record " << i;
        }
    }

    temp_dir dir_;
    posix_file_io posix_;
    std::vector<core::record> records_ = sample_records();
    std::vector<built_log> logs_;
    std::vector<core::record> seen_;
};

TEST_F(storage_log_directory, empty_directory_is_clean) {
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok()) << result.error.message();
    EXPECT_TRUE(std::holds_alternative<log_clean>(result.outcome));
    EXPECT_TRUE(result.segments.empty());
    EXPECT_EQ(result.records, 0u);
}

TEST_F(storage_log_directory, missing_directory_is_an_error) {
    const directory_scan result = scan_log_directory(posix_, dir_.path() + "/does-not-exist");
    EXPECT_FALSE(result.ok());
    EXPECT_EQ(result.error_path, dir_.path() + "/does-not-exist");
}

TEST_F(storage_log_directory, segments_written_by_the_writer_round_trip_in_order) {
    {
        segment_writer w(posix_, {.directory = dir_.path(), .segment_target_bytes = 150});
        ASSERT_FALSE(w.open(1));
        for (const auto& r : records_) {
            ASSERT_FALSE(w.append(r));
            ASSERT_FALSE(w.flush());
        }
    }
    write_file(dir_.path() + "/notes.txt", "not a segment");
    write_file(dir_.path() + "/42.log", "not a segment name either");
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok());
    EXPECT_TRUE(std::holds_alternative<log_clean>(result.outcome));
    ASSERT_GE(result.segments.size(), 3u);
    std::size_t total = 0;
    for (std::size_t i = 0; i < result.segments.size(); ++i) {
        EXPECT_EQ(result.segments[i].sequence, i + 1);
        EXPECT_EQ(result.segments[i].path, path_of(i + 1));
        EXPECT_EQ(result.segments[i].bytes, std::filesystem::file_size(path_of(i + 1)));
        EXPECT_FALSE(result.segments[i].after_damage);
        total += result.segments[i].records;
    }
    EXPECT_EQ(total, records_.size());
    EXPECT_EQ(result.records, records_.size());
    expect_seen_prefix(records_.size());
}

TEST_F(storage_log_directory, torn_tail_in_the_newest_segment_keeps_what_precedes_it) {
    write_three_segments();
    const std::size_t last = logs_[2].frame_offsets.back();
    std::filesystem::resize_file(path_of(3), last + 5);
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok());
    const auto* torn = std::get_if<log_torn_tail>(&result.outcome);
    ASSERT_NE(torn, nullptr);
    EXPECT_EQ(torn->path, path_of(3));
    EXPECT_EQ(torn->offset, last);
    EXPECT_EQ(torn->bytes_dropped, 5u);
    expect_seen_prefix(records_.size() - 1);
}

TEST_F(storage_log_directory, torn_tail_in_an_older_segment_is_damage) {
    write_three_segments();
    const std::size_t last = logs_[1].frame_offsets.back();
    std::filesystem::resize_file(path_of(2), last + 3);
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok());
    const auto* damage = std::get_if<log_damage>(&result.outcome);
    ASSERT_NE(damage, nullptr);
    EXPECT_EQ(damage->path, path_of(2));
    EXPECT_EQ(damage->offset, last);
    EXPECT_NE(damage->reason.find("not the newest"), std::string::npos) << damage->reason;
    EXPECT_EQ(damage->records_after_estimate, records_.size() - 16);
    EXPECT_EQ(damage->bytes_after, 3u + logs_[2].bytes.size());
    expect_seen_prefix(15);
    ASSERT_EQ(result.segments.size(), 3u);
    EXPECT_TRUE(result.segments[2].after_damage);
}

TEST_F(storage_log_directory, missing_middle_segment_is_damage_naming_the_gap) {
    write_three_segments();
    logs_.push_back(write_segment(4, records_.size(), records_.size()));
    std::filesystem::remove(path_of(2));
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok());
    const auto* damage = std::get_if<log_damage>(&result.outcome);
    ASSERT_NE(damage, nullptr);
    EXPECT_EQ(damage->path, path_of(3));
    EXPECT_EQ(damage->offset, 0u);
    EXPECT_NE(damage->reason.find(segment_file_name(2) + " is missing"), std::string::npos)
        << damage->reason;
    EXPECT_EQ(damage->records_after_estimate, records_.size() - 16);
    EXPECT_EQ(damage->bytes_after, logs_[2].bytes.size() + logs_[3].bytes.size());
    expect_seen_prefix(8);
}

TEST_F(storage_log_directory, bit_flip_mid_log_is_damage_at_that_frame) {
    write_three_segments();
    std::string bytes = logs_[1].bytes;
    const std::size_t bad = logs_[1].frame_offsets[3];
    bytes[bad + frame_header_size + 1] ^= 0x10;
    write_file(path_of(2), bytes);
    const directory_scan result = scan();
    ASSERT_TRUE(result.ok());
    const auto* damage = std::get_if<log_damage>(&result.outcome);
    ASSERT_NE(damage, nullptr);
    EXPECT_EQ(damage->path, path_of(2));
    EXPECT_EQ(damage->offset, bad);
    EXPECT_NE(damage->reason.find("good records follow"), std::string::npos) << damage->reason;
    // Segment 2 loses its records 4..7 (the flipped one is not counted), segment 3 all.
    EXPECT_EQ(damage->records_after_estimate, 4u + (records_.size() - 16));
    EXPECT_EQ(damage->bytes_after, bytes.size() - bad + logs_[2].bytes.size());
    expect_seen_prefix(8 + 3);
    EXPECT_EQ(result.segments[1].records, 3u);
}

TEST_F(storage_log_directory, header_sequence_unlike_the_file_name_is_damage) {
    write_three_segments();
    write_file(path_of(3), build_log({}, 9).bytes);
    const directory_scan result = scan();
    const auto* damage = std::get_if<log_damage>(&result.outcome);
    ASSERT_NE(damage, nullptr);
    EXPECT_EQ(damage->path, path_of(3));
    EXPECT_NE(damage->reason.find("sequence 9"), std::string::npos) << damage->reason;
}

TEST_F(storage_log_directory, repair_after_a_bit_flip_truncates_and_the_rescan_is_clean) {
    write_three_segments();
    std::string bytes = logs_[1].bytes;
    const std::size_t bad = logs_[1].frame_offsets[3];
    bytes[bad + frame_header_size + 1] ^= 0x10;
    write_file(path_of(2), bytes);
    const repair_result repaired = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(repaired.ok()) << repaired.error.message();
    EXPECT_TRUE(std::holds_alternative<log_damage>(repaired.before));
    EXPECT_EQ(repaired.records_dropped, 4u + (records_.size() - 16));
    EXPECT_EQ(repaired.bytes_dropped, bytes.size() - bad + logs_[2].bytes.size());
    EXPECT_EQ(repaired.files_removed, 1u);
    EXPECT_EQ(std::filesystem::file_size(path_of(2)), bad);
    EXPECT_FALSE(std::filesystem::exists(path_of(3)));
    const directory_scan result = scan();
    EXPECT_TRUE(std::holds_alternative<log_clean>(result.outcome));
    expect_seen_prefix(11);
}

TEST_F(storage_log_directory, repair_of_a_gap_removes_the_segments_after_it) {
    write_three_segments();
    logs_.push_back(write_segment(4, records_.size(), records_.size()));
    std::filesystem::remove(path_of(2));
    const repair_result repaired = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(repaired.ok());
    EXPECT_EQ(repaired.files_removed, 2u);
    EXPECT_EQ(repaired.records_dropped, records_.size() - 16);
    const directory_scan result = scan();
    EXPECT_TRUE(std::holds_alternative<log_clean>(result.outcome));
    ASSERT_EQ(result.segments.size(), 1u);
    expect_seen_prefix(8);
}

TEST_F(storage_log_directory, repair_cuts_a_torn_tail_and_removes_a_torn_header) {
    write_three_segments();
    std::filesystem::resize_file(path_of(3), logs_[2].bytes.size() - 1);
    repair_result repaired = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(repaired.ok());
    EXPECT_TRUE(std::holds_alternative<log_torn_tail>(repaired.before));
    EXPECT_EQ(repaired.records_dropped, 0u);
    EXPECT_EQ(std::filesystem::file_size(path_of(3)), logs_[2].frame_offsets.back());

    write_file(path_of(4), logs_[0].bytes.substr(0, 10));  // a header cut short
    repaired = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(repaired.ok());
    EXPECT_EQ(repaired.files_removed, 1u);
    EXPECT_FALSE(std::filesystem::exists(path_of(4)));
    const directory_scan result = scan();
    EXPECT_TRUE(std::holds_alternative<log_clean>(result.outcome));
    expect_seen_prefix(records_.size() - 1);
}

TEST_F(storage_log_directory, repair_of_a_clean_log_changes_nothing) {
    write_three_segments();
    const repair_result repaired = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(repaired.ok());
    EXPECT_TRUE(std::holds_alternative<log_clean>(repaired.before));
    EXPECT_EQ(repaired.bytes_dropped, 0u);
    EXPECT_EQ(std::filesystem::file_size(path_of(3)), logs_[2].bytes.size());
}

}  // namespace

// A repair that fails part-way must leave a directory that still scans as damaged (so the
// repair can be run again), never one that scans clean with a hole in its middle.
class storage_log_directory_failing_repair : public storage_log_directory {
protected:
    // Four segments; a flipped bit in segment 2 with good records after it in 2, 3 and 4.
    void write_damaged_log() {
        logs_.push_back(write_segment(1, 0, 5));
        logs_.push_back(write_segment(2, 5, 10));
        logs_.push_back(write_segment(3, 10, 15));
        logs_.push_back(write_segment(4, 15, records_.size()));
        std::string bytes = logs_[1].bytes;
        bad_ = logs_[1].frame_offsets[1];
        bytes[bad_ + frame_header_size + 1] ^= 0x10;
        write_file(path_of(2), bytes);
    }
    void expect_still_damaged() {
        const directory_scan again = scan();
        ASSERT_TRUE(again.ok());
        EXPECT_FALSE(std::holds_alternative<log_clean>(again.outcome));
        EXPECT_EQ(seen_.size(), 5u + 1u);  // never more than the records before the damage
    }
    std::size_t bad_ = 0;
};

TEST_F(storage_log_directory_failing_repair, failed_removal_leaves_the_log_damaged) {
    write_damaged_log();
    faulty_file_io faulty(posix_);
    faulty.fail_remove(2, EIO);  // segment 4 goes, segment 3 does not
    const repair_result repaired = repair_log_directory(faulty, dir_.path());
    ASSERT_FALSE(repaired.ok());
    EXPECT_EQ(repaired.error_path, path_of(3));
    EXPECT_EQ(repaired.files_removed, 1u);
    EXPECT_FALSE(std::filesystem::exists(path_of(4)));
    EXPECT_EQ(std::filesystem::file_size(path_of(2)), logs_[1].bytes.size());  // not cut yet
    expect_still_damaged();
    // Run again with working I/O: it finishes the job.
    const repair_result retried = repair_log_directory(posix_, dir_.path());
    ASSERT_TRUE(retried.ok()) << retried.error.message();
    EXPECT_TRUE(std::holds_alternative<log_clean>(scan().outcome));
    expect_seen_prefix(6);
}

TEST_F(storage_log_directory_failing_repair, failed_truncate_leaves_the_log_damaged) {
    write_damaged_log();
    faulty_file_io faulty(posix_);
    faulty.fail_truncate(1, EIO);
    const repair_result repaired = repair_log_directory(faulty, dir_.path());
    ASSERT_FALSE(repaired.ok());
    EXPECT_EQ(repaired.error_path, path_of(2));
    EXPECT_EQ(repaired.files_removed, 2u);  // later segments went first
    EXPECT_EQ(std::filesystem::file_size(path_of(2)), logs_[1].bytes.size());
    expect_still_damaged();
}

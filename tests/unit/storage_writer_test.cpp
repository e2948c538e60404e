#include "conveyor/storage/segment_writer.hpp"

#include "conveyor/storage/errors.hpp"
#include "conveyor/storage/segment_scanner.hpp"
#include "storage_fixture.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>

namespace {

using namespace conveyor;
using namespace conveyor::storage;
using storage_test::same_record;
using storage_test::sample_records;
using storage_test::temp_dir;

class storage_writer : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

    writer_options options() const { return {.directory = dir_.path()}; }

    scan_result read_segment(std::uint64_t seq) {
        std::string bytes;
        const std::error_code ec =
            posix_.read_all(dir_.path() + "/" + segment_file_name(seq), bytes);
        EXPECT_FALSE(ec) << ec.message();
        return scan_segment(bytes);
    }

    // Appends records[from, to) and flushes.
    std::error_code write_batch(segment_writer& w, std::size_t from, std::size_t to) {
        for (std::size_t i = from; i < to; ++i) {
            if (std::error_code ec = w.append(records_[i])) return ec;
        }
        return w.flush();
    }

    void expect_records(const scan_result& scan, std::size_t count) {
        ASSERT_GE(scan.records.size(), count);
        for (std::size_t i = 0; i < count; ++i) {
            EXPECT_TRUE(same_record(scan.records[i], records_[i])) << "record " << i;
        }
    }

    temp_dir dir_;
    posix_file_io posix_;
    faulty_file_io faulty_{posix_};
    std::vector<core::record> records_ = sample_records();
};

TEST_F(storage_writer, flushed_records_read_back_in_order) {
    segment_writer w(posix_, options());
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(write_batch(w, 0, 10));
    ASSERT_FALSE(write_batch(w, 10, records_.size()));
    EXPECT_EQ(w.pending_bytes(), 0u);
    const scan_result scan = read_segment(1);
    EXPECT_EQ(scan.end, scan_status::clean_end);
    EXPECT_EQ(scan.sequence, 1u);
    EXPECT_EQ(scan.records.size(), records_.size());
    expect_records(scan, records_.size());
    EXPECT_EQ(w.segment_bytes(), scan.valid_end);
    EXPECT_TRUE(std::filesystem::exists(dir_.path() + "/00000000000000000001.log"));
}

TEST_F(storage_writer, one_flush_is_one_write_and_one_sync) {
    segment_writer w(faulty_, options());
    ASSERT_FALSE(w.open(1));
    EXPECT_EQ(faulty_.writes(), 1u);  // the header
    EXPECT_EQ(faulty_.syncs(), 1u);
    for (const auto& r : records_) ASSERT_FALSE(w.append(r));
    EXPECT_EQ(w.pending_records(), records_.size());
    ASSERT_FALSE(w.flush());
    EXPECT_EQ(faulty_.writes(), 2u);
    EXPECT_EQ(faulty_.syncs(), 2u);
    ASSERT_FALSE(w.flush());  // nothing pending: no I/O
    EXPECT_EQ(faulty_.syncs(), 2u);
}

TEST_F(storage_writer, append_before_open_and_open_twice_are_refused) {
    segment_writer w(posix_, options());
    EXPECT_EQ(w.append(records_[0]), storage_errc::not_open);
    EXPECT_EQ(w.flush(), storage_errc::not_open);
    ASSERT_FALSE(w.open(1));
    EXPECT_EQ(w.open(2), storage_errc::already_open);
}

TEST_F(storage_writer, an_existing_segment_is_never_overwritten) {
    {
        segment_writer w(posix_, options());
        ASSERT_FALSE(w.open(5));
        ASSERT_FALSE(write_batch(w, 0, 3));
    }
    segment_writer again(posix_, options());
    EXPECT_EQ(again.open(5), std::errc::file_exists);
    EXPECT_EQ(read_segment(5).records.size(), 3u);
}

// Injected EIO (write) and ENOSPC (partial write): the flush fails, the writer refuses
// everything after without further I/O, and earlier flushes read back intact.
void expect_fail_stop(segment_writer& w, faulty_file_io& io, int error) {
    const std::uint64_t writes = io.writes();
    const std::uint64_t syncs = io.syncs();
    EXPECT_EQ(w.failure(), std::error_code(error, std::system_category()));
    EXPECT_EQ(w.append(core::rec_cancel{{}, "x"}), storage_errc::log_failed);
    EXPECT_EQ(w.flush(), storage_errc::log_failed);
    EXPECT_EQ(w.open(99), storage_errc::log_failed);
    EXPECT_EQ(io.writes(), writes);
    EXPECT_EQ(io.syncs(), syncs);
    EXPECT_FALSE(w.is_open());
}

TEST_F(storage_writer, write_eio_is_fail_stop) {
    segment_writer w(faulty_, options());
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(write_batch(w, 0, 5));
    faulty_.fail_write(3, EIO);
    EXPECT_EQ(write_batch(w, 5, 10), std::error_code(EIO, std::system_category()));
    expect_fail_stop(w, faulty_, EIO);
    const scan_result scan = read_segment(1);
    EXPECT_EQ(scan.end, scan_status::clean_end);
    EXPECT_EQ(scan.records.size(), 5u);
    expect_records(scan, 5);
}

TEST_F(storage_writer, partial_write_then_enospc_leaves_a_torn_tail) {
    segment_writer w(faulty_, options());
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(write_batch(w, 0, 5));
    const std::uint64_t durable = w.segment_bytes();
    faulty_.fail_write(3, ENOSPC, 20);
    EXPECT_EQ(write_batch(w, 5, 10), std::error_code(ENOSPC, std::system_category()));
    expect_fail_stop(w, faulty_, ENOSPC);
    const scan_result scan = read_segment(1);
    EXPECT_EQ(scan.end, scan_status::torn_tail);
    EXPECT_EQ(scan.valid_end, durable);
    EXPECT_EQ(scan.records.size(), 5u);
    expect_records(scan, 5);
    // Recovery truncates at valid_end; the segment then reads clean.
    const std::string path = w.segment_path(1);
    ASSERT_FALSE(posix_.truncate(path, scan.valid_end));
    EXPECT_EQ(read_segment(1).end, scan_status::clean_end);
}

TEST_F(storage_writer, fsync_eio_is_fail_stop_and_never_retried) {
    segment_writer w(faulty_, options());
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(write_batch(w, 0, 5));
    faulty_.fail_sync(3, EIO);
    EXPECT_EQ(write_batch(w, 5, 10), std::error_code(EIO, std::system_category()));
    expect_fail_stop(w, faulty_, EIO);
    // The unsynced batch may or may not be on disk; what was synced before is.
    const scan_result scan = read_segment(1);
    EXPECT_NE(scan.end, scan_status::damaged);
    expect_records(scan, 5);
}

TEST_F(storage_writer, header_sync_failure_is_fail_stop) {
    faulty_.fail_sync(1, ENOSPC);
    segment_writer w(faulty_, options());
    EXPECT_EQ(w.open(1), std::error_code(ENOSPC, std::system_category()));
    expect_fail_stop(w, faulty_, ENOSPC);
}

TEST_F(storage_writer, create_failure_is_fail_stop) {
    faulty_.fail_create(1, EIO);
    segment_writer w(faulty_, options());
    EXPECT_EQ(w.open(1), std::error_code(EIO, std::system_category()));
    expect_fail_stop(w, faulty_, EIO);
}

// No room for a new segment is not a failure: nothing is left behind and a later try works.
TEST_F(storage_writer, no_space_for_a_segment_leaves_the_writer_usable) {
    faulty_.fail_create(1, ENOSPC);
    segment_writer w(faulty_, options());
    EXPECT_EQ(w.open(1), storage_errc::no_space);
    EXPECT_FALSE(w.failure());
    faulty_.set_disk_full(true);  // created, but its header finds no room: removed again
    EXPECT_EQ(w.open(1), storage_errc::no_space);
    EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/" + segment_file_name(1)));
    faulty_.set_disk_full(false);
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(w.append(records_[0]));
    ASSERT_FALSE(w.flush());
    EXPECT_EQ(read_segment(1).records.size(), 1u);
}

// Space ahead: records overwrite zeros that were allocated earlier, so a full disk does not
// stop them; rotation without room keeps the current segment; both come back with space.
TEST_F(storage_writer, records_fit_in_reserved_space_on_a_full_disk) {
    writer_options opts = options();
    opts.preallocate_chunk = 4096;
    opts.segment_target_bytes = 2048;
    segment_writer w(faulty_, opts);
    ASSERT_FALSE(w.open(1));
    ASSERT_FALSE(w.reserve(8192));
    EXPECT_GE(w.room(), 8192u);
    EXPECT_EQ(std::filesystem::file_size(dir_.path() + "/" + segment_file_name(1)),
              segment_header_size + w.room());
    faulty_.set_disk_full(true);
    EXPECT_EQ(w.reserve(w.room() + 1), storage_errc::no_space);
    std::size_t written = 0;
    while (w.room() > 512) {
        ASSERT_FALSE(w.append(records_[written % records_.size()]));
        ASSERT_FALSE(w.write());
        ASSERT_FALSE(w.sync());
        ++written;
    }
    ASSERT_TRUE(w.rotation_due());
    EXPECT_EQ(w.rotate(), storage_errc::no_space);
    EXPECT_EQ(w.sequence(), 1u);
    EXPECT_FALSE(w.failure());
    EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/" + segment_file_name(2)));
    // Every record is there and the zeros after them read as the end.
    scan_result scanned = read_segment(1);
    EXPECT_EQ(scanned.end, scan_status::clean_end);
    EXPECT_EQ(scanned.records.size(), written);
    faulty_.set_disk_full(false);
    ASSERT_FALSE(w.rotate());
    EXPECT_EQ(w.sequence(), 2u);
    // The closed segment was cut to its records.
    EXPECT_EQ(std::filesystem::file_size(dir_.path() + "/" + segment_file_name(1)),
              scanned.valid_end);
}

TEST_F(storage_writer, oversized_record_is_refused_and_the_writer_goes_on) {
    writer_options opts = options();
    opts.max_frame_len = 64;
    segment_writer w(posix_, opts);
    ASSERT_FALSE(w.open(1));
    const core::record big = core::rec_ack{{}, "id", std::string(100, 'r')};
    EXPECT_EQ(w.append(big), storage_errc::record_too_large);
    EXPECT_EQ(w.pending_bytes(), 0u);
    EXPECT_FALSE(w.failure());
    ASSERT_FALSE(w.append(records_[6]));
    ASSERT_FALSE(w.flush());
    EXPECT_EQ(read_segment(1).records.size(), 1u);
}

TEST_F(storage_writer, rotates_to_the_next_segment_by_size) {
    writer_options opts = options();
    opts.segment_target_bytes = 200;
    segment_writer w(posix_, opts);
    ASSERT_FALSE(w.open(10));
    for (std::size_t i = 0; i < records_.size(); i += 3) {
        ASSERT_FALSE(write_batch(w, i, std::min(i + 3, records_.size())));
    }
    ASSERT_GT(w.sequence(), 10u);
    std::vector<core::record> all;
    for (std::uint64_t seq = 10; seq <= w.sequence(); ++seq) {
        scan_result scan = read_segment(seq);
        EXPECT_EQ(scan.end, scan_status::clean_end) << seq;
        EXPECT_EQ(scan.sequence, seq);
        if (seq < w.sequence()) {
            EXPECT_GE(scan.valid_end, 200u);
        }
        all.insert(all.end(), scan.records.begin(), scan.records.end());
    }
    ASSERT_EQ(all.size(), records_.size());
    for (std::size_t i = 0; i < all.size(); ++i) EXPECT_TRUE(same_record(all[i], records_[i]));
}

TEST(storage_file_io, segment_file_names_sort_by_sequence) {
    EXPECT_EQ(segment_file_name(42), "00000000000000000042.log");
    EXPECT_EQ(segment_file_name(UINT64_MAX), "18446744073709551615.log");
    EXPECT_EQ(parse_segment_file_name("00000000000000000042.log"), 42u);
    EXPECT_EQ(parse_segment_file_name("18446744073709551615.log"), UINT64_MAX);
    EXPECT_EQ(parse_segment_file_name("18446744073709551616.log"), std::nullopt);
    EXPECT_EQ(parse_segment_file_name("0000000000000000004x.log"), std::nullopt);
    EXPECT_EQ(parse_segment_file_name("42.log"), std::nullopt);
    EXPECT_EQ(parse_segment_file_name("00000000000000000042.tmp"), std::nullopt);
}

TEST(storage_file_io, reading_a_missing_file_is_an_error) {
    posix_file_io io;
    std::string out = "stale";
    EXPECT_EQ(io.read_all("/nonexistent/conveyor/segment.log", out),
              std::errc::no_such_file_or_directory);
    EXPECT_TRUE(out.empty());
}

}  // namespace

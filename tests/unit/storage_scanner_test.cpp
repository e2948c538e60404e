#include "conveyor/storage/segment_scanner.hpp"

#include "conveyor/storage/crc32c.hpp"

#include "storage_fixture.hpp"

#include <gtest/gtest.h>

namespace {

using namespace conveyor;
using namespace conveyor::storage;
using storage_test::build_log;
using storage_test::built_log;
using storage_test::same_record;
using storage_test::sample_records;

void expect_prefix(const scan_result& scan, const std::vector<core::record>& records,
                   std::size_t count) {
    ASSERT_EQ(scan.records.size(), count);
    for (std::size_t i = 0; i < count; ++i) {
        EXPECT_TRUE(same_record(scan.records[i], records[i])) << "record " << i;
    }
}

void put_le32(std::string& bytes, std::size_t offset, std::uint32_t v) {
    store_le32(v, bytes.data() + offset);
}

TEST(storage_scanner, reads_every_record_and_ends_clean) {
    const auto records = sample_records();
    const built_log log = build_log(records, 42);
    const scan_result scan = scan_segment(log.bytes);
    EXPECT_EQ(scan.end, scan_status::clean_end);
    EXPECT_EQ(scan.error, scan_error::none);
    EXPECT_EQ(scan.sequence, 42u);
    EXPECT_EQ(scan.valid_end, log.bytes.size());
    expect_prefix(scan, records, records.size());
}

TEST(storage_scanner, header_only_segment_is_clean_and_empty) {
    const scan_result scan = scan_segment(build_log({}, 3).bytes);
    EXPECT_EQ(scan.end, scan_status::clean_end);
    EXPECT_EQ(scan.valid_end, segment_header_size);
    EXPECT_TRUE(scan.records.empty());
}

TEST(storage_scanner, truncation_at_every_byte_of_the_last_two_records_is_a_torn_tail) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    const std::size_t n = records.size();
    for (std::size_t cut = log.frame_offsets[n - 2]; cut < log.bytes.size(); ++cut) {
        const scan_result scan = scan_segment(std::string_view(log.bytes).substr(0, cut));
        const std::size_t complete = cut >= log.frame_offsets[n - 1] ? n - 1 : n - 2;
        expect_prefix(scan, records, complete);
        const std::size_t boundary = log.frame_offsets[complete];
        EXPECT_EQ(scan.valid_end, boundary) << "cut " << cut;
        if (cut == boundary) {
            EXPECT_EQ(scan.end, scan_status::clean_end) << "cut " << cut;
        } else {
            EXPECT_EQ(scan.end, scan_status::torn_tail) << "cut " << cut;
            EXPECT_EQ(scan.error_offset, boundary);
        }
    }
}

TEST(storage_scanner, truncated_header_is_a_torn_tail_at_zero) {
    const built_log log = build_log(sample_records());
    for (std::size_t cut = 0; cut < segment_header_size; ++cut) {
        const scan_result scan = scan_segment(std::string_view(log.bytes).substr(0, cut));
        EXPECT_EQ(scan.end, scan_status::torn_tail);
        EXPECT_EQ(scan.error, scan_error::header_truncated);
        EXPECT_EQ(scan.valid_end, 0u);
    }
}

TEST(storage_scanner, a_flipped_bit_in_a_middle_frame_is_damage_at_that_frame) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    const std::size_t k = records.size() / 2;
    const std::size_t start = log.frame_offsets[k];
    for (std::size_t at = start; at < log.frame_offsets[k + 1]; ++at) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string bytes = log.bytes;
            bytes[at] = static_cast<char>(bytes[at] ^ (1 << bit));
            const scan_result scan = scan_segment(bytes);
            ASSERT_EQ(scan.end, scan_status::damaged) << "byte " << at << " bit " << bit;
            EXPECT_EQ(scan.error_offset, start);
            EXPECT_EQ(scan.valid_end, start);
            expect_prefix(scan, records, k);
        }
    }
}

TEST(storage_scanner, a_flipped_bit_in_the_last_frame_is_a_torn_tail) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    const std::size_t start = log.frame_offsets.back();
    for (std::size_t at = start; at < log.bytes.size(); ++at) {
        std::string bytes = log.bytes;
        bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
        const scan_result scan = scan_segment(bytes);
        ASSERT_EQ(scan.end, scan_status::torn_tail) << "byte " << at;
        EXPECT_EQ(scan.valid_end, start);
        expect_prefix(scan, records, records.size() - 1);
    }
}

TEST(storage_scanner, a_corrupt_length_near_uint32_max_is_a_clean_error) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    std::string bytes = log.bytes;
    put_le32(bytes, log.frame_offsets[3], 0xFFFFFFF0u);
    const scan_result scan = scan_segment(bytes);
    EXPECT_EQ(scan.end, scan_status::damaged);
    EXPECT_EQ(scan.error, scan_error::length_too_large);
    EXPECT_EQ(scan.error_offset, log.frame_offsets[3]);
    // Without the limit, the length is still checked against the bytes present, overflow-free.
    const scan_result unlimited = scan_segment(bytes, {.max_frame_len = 0xFFFFFFFFu});
    EXPECT_EQ(unlimited.end, scan_status::damaged);
    EXPECT_EQ(unlimited.error, scan_error::payload_truncated);
    // In the last frame nothing good follows: a torn tail.
    std::string tail = log.bytes;
    put_le32(tail, log.frame_offsets.back(), 0xFFFFFFF0u);
    EXPECT_EQ(scan_segment(tail).end, scan_status::torn_tail);
}

TEST(storage_scanner, a_zero_length_frame_mid_log_is_damage) {
    const built_log log = build_log(sample_records());
    std::string bytes = log.bytes;
    put_le32(bytes, log.frame_offsets[2], 0);
    const scan_result scan = scan_segment(bytes);
    EXPECT_EQ(scan.end, scan_status::damaged);
    EXPECT_EQ(scan.error, scan_error::length_zero);
}

TEST(storage_scanner, zeros_after_the_last_frame_are_a_clean_end_and_zeros_inside_it_torn) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    // The writer's zero-filled space ahead: zeros from a frame boundary to the end of the file.
    const scan_result appended = scan_segment(log.bytes + std::string(4096, '\0'));
    EXPECT_EQ(appended.end, scan_status::clean_end);
    EXPECT_EQ(appended.valid_end, log.bytes.size());
    expect_prefix(appended, records, records.size());
    const std::string short_tail = log.bytes + std::string(5, '\0');  // under a frame header
    segment_scanner scanner(short_tail);
    core::record r;
    while (scanner.next(r) == scan_status::record) {
    }
    EXPECT_EQ(scanner.next(r), scan_status::clean_end);
    EXPECT_EQ(scanner.zero_tail(), 5u);
    // The last write never reached the disk: zeros over part of the last frame are torn.
    std::string overwritten = log.bytes;
    const std::size_t last = log.frame_offsets.back();
    std::fill(overwritten.begin() + static_cast<long>(last) + 10, overwritten.end(), '\0');
    const scan_result partial = scan_segment(overwritten + std::string(100, '\0'));
    EXPECT_EQ(partial.end, scan_status::torn_tail);
    EXPECT_EQ(partial.valid_end, last);
    // Zeros, then a good frame again: damage, not the end.
    const std::string frame = log.bytes.substr(last);
    const scan_result gap = scan_segment(log.bytes.substr(0, last) + std::string(64, '\0') + frame);
    EXPECT_EQ(gap.end, scan_status::damaged);
    // A file of zeros only (header never written) is torn at 0; other bad headers are damage.
    EXPECT_EQ(scan_segment(std::string(4096, '\0')).end, scan_status::torn_tail);
}

TEST(storage_scanner, a_bad_header_is_damage) {
    const built_log log = build_log(sample_records());
    for (const std::size_t at : {0u, 8u, 12u, 20u}) {
        std::string bytes = log.bytes;
        bytes[at] = static_cast<char>(bytes[at] ^ 1);
        const scan_result scan = scan_segment(bytes);
        EXPECT_EQ(scan.end, scan_status::damaged) << at;
        EXPECT_EQ(scan.error, scan_error::header_bad);
        EXPECT_EQ(scan.error_offset, 0u);
    }
    std::string other_version;
    other_version.append(segment_magic);
    append_le32(2, other_version);
    append_le64(1, other_version);
    append_le32(crc32c(other_version), other_version);
    segment_scanner scanner(other_version);
    core::record r;
    EXPECT_EQ(scanner.next(r), scan_status::damaged);
    EXPECT_EQ(scanner.header_error(), header_error::bad_version);
}

TEST(storage_scanner, a_record_that_does_not_decode_under_a_good_crc_is_damage_even_last) {
    built_log log = build_log(sample_records());
    const std::size_t end = log.bytes.size();
    append_frame(std::string("\x63junk", 5), log.bytes);
    segment_scanner scanner(log.bytes);
    core::record r;
    scan_status s;
    while ((s = scanner.next(r)) == scan_status::record) {
    }
    EXPECT_EQ(s, scan_status::damaged);
    EXPECT_EQ(scanner.error(), scan_error::bad_record);
    EXPECT_EQ(scanner.record_error(), decode_error::unknown_tag);
    EXPECT_EQ(scanner.error_offset(), end);
    EXPECT_EQ(scanner.next(r), scan_status::damaged);  // sticky
}

TEST(storage_scanner, drop_estimate_counts_the_good_records_after_damage) {
    const auto records = sample_records();
    const built_log log = build_log(records);
    const std::size_t k = 5;
    std::string bytes = log.bytes;
    bytes[log.frame_offsets[k] + 9] ^= 0x01;  // payload byte: bad CRC
    const scan_result scan = scan_segment(bytes);
    ASSERT_EQ(scan.end, scan_status::damaged);
    const drop_estimate drop = estimate_dropped(bytes, scan.error_offset);
    EXPECT_EQ(drop.bytes, bytes.size() - log.frame_offsets[k]);
    EXPECT_EQ(drop.good_records, records.size() - k - 1);
    EXPECT_EQ(estimate_dropped(bytes, bytes.size()).bytes, 0u);
}

TEST(storage_scanner, find_good_frame_skips_garbage) {
    const built_log log = build_log(sample_records());
    const std::string garbage = "\xff\xff\xff\x7f garbage \x01\x00\x00\x00\x00\x00\x00\x00!";
    const std::string bytes = garbage + log.bytes.substr(log.frame_offsets[0]);
    EXPECT_EQ(find_good_frame(bytes, 0), garbage.size());
    EXPECT_EQ(find_good_frame(garbage, 0), std::string_view::npos);
}

}  // namespace

#include "conveyor/storage/crc32c.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace conveyor::storage;

std::string ascending(int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(i));
    return out;
}

// Check values from RFC 3720 (iSCSI), appendix B.4, and the common "123456789" check.
TEST(storage_crc32c, matches_known_vectors) {
    std::string descending;
    for (int i = 31; i >= 0; --i) descending.push_back(static_cast<char>(i));
    for (const auto fn : {&crc32c_software, &crc32c_hardware}) {
        if (fn == &crc32c_hardware && !crc32c_hardware_available()) continue;
        EXPECT_EQ(fn(0, ""), 0u);
        EXPECT_EQ(fn(0, "123456789"), 0xE3069283u);
        EXPECT_EQ(fn(0, std::string(32, '\0')), 0x8A9136AAu);
        EXPECT_EQ(fn(0, std::string(32, '\xff')), 0x62A8AB43u);
        EXPECT_EQ(fn(0, ascending(32)), 0x46DD794Eu);
        EXPECT_EQ(fn(0, descending), 0x113FDB5Cu);
    }
    EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

TEST(storage_crc32c, software_and_hardware_agree_on_every_length_and_alignment) {
    if (!crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
    std::mt19937 rng(42);
    std::string data(600, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    const std::string_view view(data);
    for (std::size_t offset = 0; offset < 8; ++offset) {
        for (std::size_t len = 0; len + offset <= 300; ++len) {
            const auto part = view.substr(offset, len);
            ASSERT_EQ(crc32c_software(0, part), crc32c_hardware(0, part))
                << "offset " << offset << " len " << len;
            ASSERT_EQ(crc32c_software(0x12345678, part), crc32c_hardware(0x12345678, part));
        }
    }
}

// The hardware path runs three streams over blocks of 3 x 4096 and 3 x 256 bytes and joins
// them: lengths around every block boundary, and records of real sizes.
TEST(storage_crc32c, software_and_hardware_agree_across_the_three_stream_blocks) {
    if (!crc32c_hardware_available()) GTEST_SKIP() << "no SSE4.2 on this CPU";
    std::mt19937 rng(7);
    std::string data(200 * 1024 + 16, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    const std::string_view view(data);
    std::vector<std::size_t> lengths;
    for (std::size_t block : {768u, 12288u}) {
        for (std::size_t k = 1; k <= 5; ++k) {
            for (std::size_t d = 0; d < 20; ++d) {
                lengths.push_back(k * block + d);
                lengths.push_back(k * block - d - 1);
            }
        }
    }
    for (std::size_t len : {65536u, 65536u + 61u, 100000u, 200u * 1024u}) lengths.push_back(len);
    for (std::size_t offset : {0u, 3u, 8u}) {
        for (std::size_t len : lengths) {
            const auto part = view.substr(offset, len);
            ASSERT_EQ(crc32c_software(0, part), crc32c_hardware(0, part))
                << "offset " << offset << " len " << len;
            ASSERT_EQ(crc32c_software(0xdeadbeef, part), crc32c_hardware(0xdeadbeef, part))
                << "offset " << offset << " len " << len;
        }
    }
}

TEST(storage_crc32c, extend_equals_crc_of_concatenation) {
    const std::string whole = "the quick brown fox jumps over the lazy dog, twice over";
    const std::string_view view(whole);
    for (std::size_t split = 0; split <= whole.size(); ++split) {
        EXPECT_EQ(crc32c_extend(crc32c(view.substr(0, split)), view.substr(split)), crc32c(whole));
        EXPECT_EQ(crc32c_software(crc32c_software(0, view.substr(0, split)), view.substr(split)),
                  crc32c(whole));
    }
}

}  // namespace

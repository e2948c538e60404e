#include "conveyor/storage/crc32c.hpp"

#include <array>
#include <cstddef>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace conveyor::storage {

namespace {

constexpr std::uint32_t polynomial = 0x82F63B78u;

// Slicing-by-8: table[0] is the classic byte-at-a-time table; table[k][b] is the CRC of byte
// b followed by k zero bytes, so eight bytes are folded with eight independent lookups.
using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_tables() {
    crc_tables t{};
    for (std::uint32_t b = 0; b < 256; ++b) {
        std::uint32_t crc = b;
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 1u) != 0 ? (crc >> 1) ^ polynomial : crc >> 1;
        }
        t[0][b] = crc;
    }
    for (std::size_t k = 1; k < 8; ++k) {
        for (std::size_t b = 0; b < 256; ++b) {
            t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
        }
    }
    return t;
}

constexpr crc_tables tables = make_tables();

std::uint64_t load_le64(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}

}  // namespace

std::uint32_t crc32c_software(std::uint32_t crc, std::string_view data) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    std::uint32_t c = ~crc;
    while (n >= 8) {
        const std::uint64_t w = load_le64(p) ^ c;
        c = tables[7][w & 0xFF] ^ tables[6][(w >> 8) & 0xFF] ^ tables[5][(w >> 16) & 0xFF] ^
            tables[4][(w >> 24) & 0xFF] ^ tables[3][(w >> 32) & 0xFF] ^
            tables[2][(w >> 40) & 0xFF] ^ tables[1][(w >> 48) & 0xFF] ^ tables[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        c = (c >> 8) ^ tables[0][(c ^ *p) & 0xFF];
        ++p;
        --n;
    }
    return ~c;
}

#if defined(__x86_64__)

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hardware(std::uint32_t crc,
                                                                std::string_view data) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    std::uint64_t c = ~crc;
    while (n >= 8) {
        c = _mm_crc32_u64(c, load_le64(p));
        p += 8;
        n -= 8;
    }
    auto c32 = static_cast<std::uint32_t>(c);
    while (n > 0) {
        c32 = _mm_crc32_u8(c32, *p);
        ++p;
        --n;
    }
    return ~c32;
}

bool crc32c_hardware_available() noexcept {
    return __builtin_cpu_supports("sse4.2") != 0;
}

#else

std::uint32_t crc32c_hardware(std::uint32_t crc, std::string_view data) noexcept {
    return crc32c_software(crc, data);
}

bool crc32c_hardware_available() noexcept {
    return false;
}

#endif

std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) noexcept {
    using impl = std::uint32_t (*)(std::uint32_t, std::string_view) noexcept;
    static const impl chosen = crc32c_hardware_available() ? &crc32c_hardware : &crc32c_software;
    return chosen(crc, data);
}

}  // namespace conveyor::storage

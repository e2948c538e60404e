#include "conveyor/storage/crc32c.hpp"

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>

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

// One unaligned 8-byte load (memcpy; the byte-by-byte form was not merged into one by g++ 12,
// which made the crc32 loop run at a third of its speed).
std::uint64_t load_le64(const unsigned char* p) noexcept {
    std::uint64_t v = 0;
    std::memcpy(&v, p, sizeof v);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
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

namespace {

// a * b modulo the polynomial, in the reflected bit order the CRC register uses.
constexpr std::uint32_t multiply_mod_p(std::uint32_t a, std::uint32_t b) noexcept {
    std::uint32_t product = 0;
    for (std::uint32_t m = 1u << 31; m != 0; m >>= 1) {
        if ((a & m) != 0) product ^= b;
        b = (b & 1u) != 0 ? (b >> 1) ^ polynomial : b >> 1;
    }
    return product;
}

// x^(8 * bytes) modulo the polynomial: what the register is multiplied by when `bytes` zero
// bytes pass through it.
constexpr std::uint32_t shift_factor(std::size_t bytes) noexcept {
    std::uint32_t factor = 1u << 31;  // x^0
    std::uint32_t power = 1u << 30;   // x^1, then x^2, x^4, ...
    for (std::size_t e = 8 * bytes; e != 0; e >>= 1) {
        if ((e & 1) != 0) factor = multiply_mod_p(factor, power);
        power = multiply_mod_p(power, power);
    }
    return factor;
}

// Three streams of `stride` bytes at a time: the crc32 instruction has a latency of three
// cycles and a throughput of one, so three independent registers run about three times as
// fast as one. The register of a block equals reg0 * x^(8 * 2 * stride) ^ reg1 *
// x^(8 * stride) ^ reg2 (the CRC is linear; the later streams start from zero).
constexpr std::size_t long_stride = 4096;
constexpr std::size_t short_stride = 256;
constexpr std::uint32_t long_shift = shift_factor(long_stride);
constexpr std::uint32_t short_shift = shift_factor(short_stride);

__attribute__((target("sse4.2"))) std::uint64_t crc_three_ways(std::uint64_t c,
                                                               const unsigned char*& p,
                                                               std::size_t& n, std::size_t stride,
                                                               std::uint32_t shift) noexcept {
    while (n >= 3 * stride) {
        std::uint64_t c1 = 0, c2 = 0;
        for (std::size_t i = 0; i < stride; i += 8) {
            c = _mm_crc32_u64(c, load_le64(p + i));
            c1 = _mm_crc32_u64(c1, load_le64(p + stride + i));
            c2 = _mm_crc32_u64(c2, load_le64(p + 2 * stride + i));
        }
        c = multiply_mod_p(static_cast<std::uint32_t>(c), shift) ^ c1;
        c = multiply_mod_p(static_cast<std::uint32_t>(c), shift) ^ c2;
        p += 3 * stride;
        n -= 3 * stride;
    }
    return c;
}

}  // namespace

__attribute__((target("sse4.2"))) std::uint32_t crc32c_hardware(std::uint32_t crc,
                                                                std::string_view data) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    std::uint64_t c = ~crc;
    c = crc_three_ways(c, p, n, long_stride, long_shift);
    c = crc_three_ways(c, p, n, short_stride, short_shift);
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

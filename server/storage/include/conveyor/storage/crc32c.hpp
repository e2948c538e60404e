// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every log frame and
// segment header. Same parameters as iSCSI, ext4 metadata, LevelDB and RocksDB:
// crc32c("123456789") == 0xE3069283.
//
// crc32c() picks, once per process, the SSE4.2 instruction when the CPU has it and the
// table-driven software version otherwise; both give identical results (tested).
#pragma once

#include <cstdint>
#include <string_view>

namespace conveyor::storage {

// CRC of `data`, continuing from `crc`, the finished CRC of the bytes before it (0 to start):
// crc32c_extend(crc32c(a), b) == crc32c(a + b).
std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) noexcept;

inline std::uint32_t crc32c(std::string_view data) noexcept {
    return crc32c_extend(0, data);
}

// The two implementations, exposed for tests and benchmarks. crc32c_hardware() must only be
// called when crc32c_hardware_available() is true.
std::uint32_t crc32c_software(std::uint32_t crc, std::string_view data) noexcept;
std::uint32_t crc32c_hardware(std::uint32_t crc, std::string_view data) noexcept;
bool crc32c_hardware_available() noexcept;

}  // namespace conveyor::storage

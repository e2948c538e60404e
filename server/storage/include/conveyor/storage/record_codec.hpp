// Binary form of one core::record, the payload of one log frame.
//
// Layout: a 1-byte type tag, then the record's fields in declaration order:
//   instant         two zigzag varints: mono_us, wall_ms
//   std::int64_t    zigzag LEB128 varint (1..10 bytes)
//   int             zigzag LEB128 varint, must fit in 32 bits
//   std::uint32_t   LEB128 varint, must fit in 32 bits
//   bool            one byte, 0 or 1
//   std::string     LEB128 varint length, then the bytes (any bytes, including \0)
// Tags are part of the on-disk format and never reused (see tag table in record_codec.cpp):
//   1 enqueue, 2 lease, 3 ack, 4 fail, 5 release, 6 extend, 7 cancel, 8 ttl_expired,
//   9 requeue, 10 pop, 11 forget, 12 purge, 13 delete_queue, 14 enqueue with properties,
//   15 session-bound lease.
// An enqueue is written with tag 1 when its `properties` are empty (the format before
// properties existed, unchanged) and with tag 14 otherwise: tag 1's fields, then `properties`.
// Both decode to core::rec_enqueue. A lease is written with tag 2, or with tag 15 (the same
// fields) when it is `session_bound`; both decode to core::rec_lease, the tag giving the flag.
//
// decode() never throws on bad input and never allocates by a declared length beyond the
// bytes present: a string length is checked against the remaining input before any copy.
#pragma once

#include "conveyor/core/records.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace conveyor::storage {

// Appends the encoding of `r` to `out`. Appends nothing for a valueless variant.
void encode(const core::record& r, std::string& out);

enum class decode_error : std::uint8_t {
    none,
    empty,                // no bytes at all (not even a tag)
    unknown_tag,          // the tag names no record type
    truncated,            // the input ends inside a field
    length_beyond_input,  // a string length is larger than the bytes that remain
    varint_too_long,      // a varint of more than 10 bytes or beyond 64 bits
    value_out_of_range,   // an int or uint32 field outside its type's range
    bad_bool,             // a bool byte other than 0 or 1
    trailing_bytes,       // the record is complete but bytes remain
};

std::string_view to_string(decode_error e) noexcept;

struct decode_result {
    core::record record;  // meaningful only when ok()
    decode_error error = decode_error::none;
    std::size_t error_offset = 0;  // byte offset in the input where decoding failed

    bool ok() const noexcept { return error == decode_error::none; }
};

// Decodes exactly one record that must fill `input` entirely.
decode_result decode(std::string_view input);

// The error decode() would return, without building the record or copying any string: cost
// grows with the number of fields, not the bytes (used to resynchronise on damaged logs).
decode_error validate(std::string_view input);

// The task id of an encoded record that validate() accepted, without decoding the rest (a view
// into `input`); empty for the records that name a queue (purge, delete_queue). Equal to
// core::record_task_id(decode(input).record).
std::string_view task_id_of(std::string_view input) noexcept;

// Stable on-disk tag of a record (1..15; 14 = an enqueue with properties, 15 = a session-bound
// lease), 0 for a valueless variant.
std::uint8_t record_tag(const core::record& r) noexcept;

}  // namespace conveyor::storage

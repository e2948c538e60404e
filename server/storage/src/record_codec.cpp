#include "conveyor/storage/record_codec.hpp"

#include <limits>
#include <type_traits>
#include <utility>

namespace conveyor::storage {

namespace {

using namespace conveyor::core;

template <class>
[[maybe_unused]] inline constexpr bool unhandled_record = false;

// The on-disk tag of each record type. A record type added to core::record fails to compile
// (static_assert in tag_for()) until it is given a new tag here; never reuse one.
template <class T>
inline constexpr std::uint8_t tag_of = 0;
template <>
inline constexpr std::uint8_t tag_of<rec_enqueue> = 1;
template <>
inline constexpr std::uint8_t tag_of<rec_lease> = 2;
template <>
inline constexpr std::uint8_t tag_of<rec_ack> = 3;
template <>
inline constexpr std::uint8_t tag_of<rec_fail> = 4;
template <>
inline constexpr std::uint8_t tag_of<rec_release> = 5;
template <>
inline constexpr std::uint8_t tag_of<rec_extend> = 6;
template <>
inline constexpr std::uint8_t tag_of<rec_cancel> = 7;
template <>
inline constexpr std::uint8_t tag_of<rec_ttl_expired> = 8;
template <>
inline constexpr std::uint8_t tag_of<rec_requeue> = 9;
template <>
inline constexpr std::uint8_t tag_of<rec_pop> = 10;
template <>
inline constexpr std::uint8_t tag_of<rec_forget> = 11;
template <>
inline constexpr std::uint8_t tag_of<rec_purge> = 12;
template <>
inline constexpr std::uint8_t tag_of<rec_delete_queue> = 13;
// 14: an enqueue with properties (tag_enqueue_with_properties below).

// An enqueue whose `properties` are not empty: tag 1's fields, then `properties`. A second tag
// rather than a field added to tag 1, so that every enqueue record written before properties
// existed decodes unchanged and an enqueue without properties still encodes byte for byte as
// it did (docs/storage-format.md).
inline constexpr std::uint8_t tag_enqueue_with_properties = 14;
// 15: a session-bound lease (rec_lease::session_bound, an AMQP delivery): tag 2's fields. The
// flag is the tag, so every lease record written before it existed decodes as not bound and an
// ordinary lease still encodes byte for byte as it did.
inline constexpr std::uint8_t tag_session_lease = 15;

template <class T>
constexpr std::uint8_t tag_for() {
    static_assert(tag_of<T> != 0, "give the new record type a tag");
    static_assert(tag_of<T> != tag_enqueue_with_properties, "tag 14 is taken");
    static_assert(tag_of<T> != tag_session_lease, "tag 15 is taken");
    return tag_of<T>;
}

// The tag one record is written with: its type's tag, except for the two forms above.
template <class T>
std::uint8_t tag_of_record(const T& rec) noexcept {
    if constexpr (std::is_same_v<T, rec_enqueue>) {
        if (!rec.properties.empty()) return tag_enqueue_with_properties;
    }
    if constexpr (std::is_same_v<T, rec_lease>) {
        if (rec.session_bound) return tag_session_lease;
    }
    return tag_for<T>();
}

// The fields of each record type, in on-disk order, for a record written with `tag`. Encoder
// and decoder both walk this list, so they cannot disagree. A new record type fails to compile
// here until it is listed.
template <class R, class F>
void for_each_field(R& r, F& f, std::uint8_t tag) {
    using T = std::remove_const_t<R>;
    f(r.at);
    if constexpr (std::is_same_v<T, rec_enqueue>) {
        f(r.id);
        f(r.queue);
        f(r.name);
        f(r.payload);
        f(r.priority);
        f(r.due_us);
        f(r.max_retries);
        f(r.backoff_base_ms);
        f(r.backoff_max_ms);
        f(r.timeout_ms);
        f(r.ttl_deadline_us);
        f(r.at_front);
        if (tag == tag_enqueue_with_properties) f(r.properties);
    } else if constexpr (std::is_same_v<T, rec_lease>) {
        f(r.id);
        f(r.delivery);
        f(r.deadline_us);
        f(r.lease_ms);
    } else if constexpr (std::is_same_v<T, rec_ack>) {
        f(r.id);
        f(r.result);
    } else if constexpr (std::is_same_v<T, rec_fail>) {
        f(r.id);
        f(r.error);
        f(r.dead);
        f(r.retry_due_us);
        f(r.expired);
    } else if constexpr (std::is_same_v<T, rec_release>) {
        f(r.id);
        f(r.due_us);
    } else if constexpr (std::is_same_v<T, rec_extend>) {
        f(r.id);
        f(r.deadline_us);
    } else if constexpr (std::is_same_v<T, rec_cancel> || std::is_same_v<T, rec_ttl_expired> ||
                         std::is_same_v<T, rec_requeue> || std::is_same_v<T, rec_pop> ||
                         std::is_same_v<T, rec_forget>) {
        f(r.id);
    } else if constexpr (std::is_same_v<T, rec_purge> || std::is_same_v<T, rec_delete_queue>) {
        f(r.queue);
    } else {
        static_assert(unhandled_record<T>, "list the fields of the new record type");
    }
    static_cast<void>(tag);
}

std::uint64_t zigzag(std::int64_t v) noexcept {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}

std::int64_t unzigzag(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
}

struct field_writer {
    std::string& out;

    void varint(std::uint64_t v) {
        while (v >= 0x80) {
            out.push_back(static_cast<char>((v & 0x7F) | 0x80));
            v >>= 7;
        }
        out.push_back(static_cast<char>(v));
    }
    void operator()(const instant& v) {
        varint(zigzag(v.mono_us));
        varint(zigzag(v.wall_ms));
    }
    void operator()(const std::string& v) {
        varint(v.size());
        out.append(v);
    }
    void operator()(std::int64_t v) { varint(zigzag(v)); }
    void operator()(int v) { varint(zigzag(v)); }
    void operator()(std::uint32_t v) { varint(v); }
    void operator()(bool v) { out.push_back(v ? '\1' : '\0'); }
};

// Reads fields from `in`; the first error sticks and every later read is a no-op. Without
// `copy_strings`, strings are checked and skipped: validation costs O(fields), not O(bytes).
template <bool copy_strings>
class field_reader {
public:
    explicit field_reader(std::string_view in, std::size_t pos) : in_(in), pos_(pos) {}

    void operator()(instant& v) {
        svarint(v.mono_us);
        svarint(v.wall_ms);
    }
    void operator()(std::string& v) {
        const std::size_t start = pos_;
        std::uint64_t len = 0;
        if (!varint(len)) return;
        if (len > in_.size() - pos_) {
            fail(decode_error::length_beyond_input, start);
            return;
        }
        if constexpr (copy_strings) v.assign(in_.substr(pos_, static_cast<std::size_t>(len)));
        pos_ += static_cast<std::size_t>(len);
    }
    void operator()(std::int64_t& v) { svarint(v); }
    void operator()(int& v) {
        const std::size_t start = pos_;
        std::int64_t wide = 0;
        if (!svarint(wide)) return;
        if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
            fail(decode_error::value_out_of_range, start);
            return;
        }
        v = static_cast<int>(wide);
    }
    void operator()(std::uint32_t& v) {
        const std::size_t start = pos_;
        std::uint64_t wide = 0;
        if (!varint(wide)) return;
        if (wide > std::numeric_limits<std::uint32_t>::max()) {
            fail(decode_error::value_out_of_range, start);
            return;
        }
        v = static_cast<std::uint32_t>(wide);
    }
    void operator()(bool& v) {
        if (failed()) return;
        if (pos_ >= in_.size()) {
            fail(decode_error::truncated, pos_);
            return;
        }
        const auto byte = static_cast<unsigned char>(in_[pos_]);
        if (byte > 1) {
            fail(decode_error::bad_bool, pos_);
            return;
        }
        v = byte == 1;
        ++pos_;
    }

    bool failed() const noexcept { return error_ != decode_error::none; }
    decode_error error() const noexcept { return error_; }
    std::size_t error_offset() const noexcept { return error_offset_; }
    std::size_t position() const noexcept { return pos_; }

private:
    bool fail(decode_error e, std::size_t at) {
        error_ = e;
        error_offset_ = at;
        return false;
    }
    // LEB128: at most 10 bytes; the 10th may only carry bit 63.
    bool varint(std::uint64_t& v) {
        if (failed()) return false;
        v = 0;
        const std::size_t start = pos_;
        for (int i = 0; i < 10; ++i) {
            if (pos_ >= in_.size()) return fail(decode_error::truncated, pos_);
            const auto byte = static_cast<unsigned char>(in_[pos_++]);
            if (i == 9 && byte > 1) return fail(decode_error::varint_too_long, start);
            v |= static_cast<std::uint64_t>(byte & 0x7F) << (7 * i);
            if ((byte & 0x80) == 0) return true;
        }
        return fail(decode_error::varint_too_long, start);
    }
    bool svarint(std::int64_t& v) {
        std::uint64_t raw = 0;
        if (!varint(raw)) return false;
        v = unzigzag(raw);
        return true;
    }

    std::string_view in_;
    std::size_t pos_;
    decode_error error_ = decode_error::none;
    std::size_t error_offset_ = 0;
};

// std::visit may throw bad_variant_access on a valueless variant; this never does.
template <class Fn, std::size_t... I>
void visit_alternative(const record& r, Fn&& fn, std::index_sequence<I...>) {
    static_cast<void>(((r.index() == I ? (fn(*std::get_if<I>(&r)), true) : false) || ...));
}

template <class T, bool copy_strings = true>
decode_result decode_as(std::uint8_t tag, std::string_view input) {
    decode_result out;
    T rec;
    field_reader<copy_strings> reader(input, 1);
    for_each_field(rec, reader, tag);
    if (reader.failed()) {
        out.error = reader.error();
        out.error_offset = reader.error_offset();
    } else if (reader.position() != input.size()) {
        out.error = decode_error::trailing_bytes;
        out.error_offset = reader.position();
    } else if constexpr (copy_strings) {
        if constexpr (std::is_same_v<T, rec_lease>) rec.session_bound = tag == tag_session_lease;
        out.record = std::move(rec);
    }
    return out;
}

// Whether records of type T are written with `tag`.
template <class T>
constexpr bool tag_names(std::uint8_t tag) noexcept {
    if constexpr (std::is_same_v<T, rec_enqueue>) {
        if (tag == tag_enqueue_with_properties) return true;
    }
    if constexpr (std::is_same_v<T, rec_lease>) {
        if (tag == tag_session_lease) return true;
    }
    return tag == tag_for<T>();
}

template <bool copy_strings, std::size_t... I>
decode_result decode_tagged(std::uint8_t tag, std::string_view input, std::index_sequence<I...>) {
    using std::variant_alternative_t;
    decode_result out;
    const bool known =
        ((tag_names<variant_alternative_t<I, record>>(tag)
              ? (out = decode_as<variant_alternative_t<I, record>, copy_strings>(tag, input), true)
              : false) ||
         ...);
    if (!known) {
        out.error = decode_error::unknown_tag;
        out.error_offset = 0;
    }
    return out;
}

constexpr auto alternatives = std::make_index_sequence<std::variant_size_v<record>>{};

}  // namespace

void encode(const record& r, std::string& out) {
    field_writer writer{out};
    visit_alternative(
        r,
        [&](const auto& rec) {
            const std::uint8_t tag = tag_of_record(rec);
            out.push_back(static_cast<char>(tag));
            for_each_field(rec, writer, tag);
        },
        alternatives);
}

std::uint8_t record_tag(const record& r) noexcept {
    std::uint8_t tag = 0;
    visit_alternative(
        r, [&](const auto& rec) { tag = tag_of_record(rec); }, alternatives);
    return tag;
}

decode_result decode(std::string_view input) {
    if (input.empty()) {
        decode_result out;
        out.error = decode_error::empty;
        return out;
    }
    return decode_tagged<true>(static_cast<std::uint8_t>(input[0]), input, alternatives);
}

decode_error validate(std::string_view input) {
    if (input.empty()) return decode_error::empty;
    return decode_tagged<false>(static_cast<std::uint8_t>(input[0]), input, alternatives).error;
}

// Every record but purge and delete_queue lists the task id right after the instant
// (for_each_field); the codec test checks this against core::record_task_id for each kind.
std::string_view task_id_of(std::string_view input) noexcept {
    if (input.empty()) return {};
    const auto tag = static_cast<std::uint8_t>(input[0]);
    if (tag == tag_of<rec_purge> || tag == tag_of<rec_delete_queue>) return {};
    std::size_t pos = 1;
    auto varint = [&](std::uint64_t& v) {
        v = 0;
        for (int shift = 0; pos < input.size() && shift < 64; shift += 7) {
            const auto byte = static_cast<unsigned char>(input[pos++]);
            v |= static_cast<std::uint64_t>(byte & 0x7F) << shift;
            if ((byte & 0x80) == 0) return true;
        }
        return false;
    };
    std::uint64_t skipped = 0, length = 0;
    if (!varint(skipped) || !varint(skipped) || !varint(length)) return {};  // mono, wall, len
    if (length > input.size() - pos) return {};
    return input.substr(pos, static_cast<std::size_t>(length));
}

std::string_view to_string(decode_error e) noexcept {
    switch (e) {
        case decode_error::none:
            return "ok";
        case decode_error::empty:
            return "empty record";
        case decode_error::unknown_tag:
            return "unknown record type tag";
        case decode_error::truncated:
            return "record truncated inside a field";
        case decode_error::length_beyond_input:
            return "string length beyond the end of the record";
        case decode_error::varint_too_long:
            return "varint longer than 64 bits";
        case decode_error::value_out_of_range:
            return "integer field out of range";
        case decode_error::bad_bool:
            return "bool field neither 0 nor 1";
        case decode_error::trailing_bytes:
            return "trailing bytes after the record";
    }
    return "unknown decode error";
}

}  // namespace conveyor::storage

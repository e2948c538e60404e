#include "conveyor/protocol/amqp_methods.hpp"

#include "amqp_wire.hpp"

#include <array>
#include <optional>
#include <utility>

namespace conveyor::protocol::amqp {

namespace {

// Reads method arguments for the `fields()` lists. After the first failure every call is a
// no-op and `error` says what went wrong.
class method_reader {
public:
    explicit method_reader(std::string_view args) : in_(args) {}

    void octet(std::uint8_t& v) { take(in_.u8(v)); }
    void short_uint(std::uint16_t& v) { take(in_.u16(v)); }
    void long_uint(std::uint32_t& v) { take(in_.u32(v)); }
    void longlong(std::uint64_t& v) { take(in_.u64(v)); }
    void bit(bool& v) {
        if (failed()) {
            return;
        }
        if (bit_count_ == 8) {
            if (!in_.u8(bits_)) {
                return fail_truncated();
            }
            bit_count_ = 0;
        }
        v = ((bits_ >> bit_count_) & 1) != 0;
        ++bit_count_;
    }
    void shortstr(std::string& v) { text(v, false); }
    void longstr(std::string& v) { text(v, true); }
    void table(field_table& v) {
        if (failed()) {
            return;
        }
        bit_count_ = 8;
        std::string_view body;
        if (!in_.longstr(body)) {
            return fail_truncated();
        }
        auto decoded = decode_table_body(body);
        if (!decoded) {
            error = decoded.error();
            return;
        }
        v = std::move(*decoded);
    }

    bool failed() const noexcept { return error.has_value(); }
    std::size_t left() const noexcept { return in_.remaining(); }

    std::optional<amqp_error> error;

private:
    void take(bool ok) {
        bit_count_ = 8;
        if (!ok && !failed()) {
            fail_truncated();
        }
    }
    void text(std::string& v, bool long_form) {
        if (failed()) {
            return;
        }
        bit_count_ = 8;
        std::string_view s;
        if (!(long_form ? in_.longstr(s) : in_.shortstr(s))) {
            return fail_truncated();
        }
        v.assign(s);
    }
    void fail_truncated() {
        error = detail::frame_error("arguments run past the end of the frame");
    }

    detail::wire_reader in_;
    std::uint8_t bits_ = 0;
    int bit_count_ = 8;
};

template <class M>
amqp_result<method> decode_as(std::string_view args) {
    M m;
    method_reader reader(args);
    M::fields(m, reader);
    amqp_error error;
    if (reader.error) {
        error = std::move(*reader.error);
    } else if (reader.left() != 0) {
        error =
            detail::frame_error(std::to_string(reader.left()) + " bytes after the last argument");
    } else {
        return method(std::in_place_type<M>, std::move(m));
    }
    error.text = std::string(method_name(M::id)) + ": " + error.text;
    error.method = M::id;
    return error;
}

using decode_fn = amqp_result<method> (*)(std::string_view);

struct method_info {
    method_key key;
    std::string_view name;
    peer sent_by;
    decode_fn decode;
};

template <std::size_t... I>
constexpr auto make_method_table(std::index_sequence<I...>) {
    return std::array<method_info, sizeof...(I)>{
        method_info{std::variant_alternative_t<I, method>::id,
                    {},
                    std::variant_alternative_t<I, method>::sent_by,
                    &decode_as<std::variant_alternative_t<I, method>>}...};
}

// Names in variant order (the struct names with '.' and '-').
// clang-format off
constexpr std::string_view method_names[] = {
    "connection.start", "connection.start-ok", "connection.secure", "connection.secure-ok",
    "connection.tune", "connection.tune-ok", "connection.open", "connection.open-ok",
    "connection.close", "connection.close-ok", "connection.blocked", "connection.unblocked",
    "connection.update-secret", "connection.update-secret-ok", "channel.open", "channel.open-ok",
    "channel.flow", "channel.flow-ok", "channel.close", "channel.close-ok", "exchange.declare",
    "exchange.declare-ok", "exchange.delete", "exchange.delete-ok", "exchange.bind",
    "exchange.bind-ok", "exchange.unbind", "exchange.unbind-ok", "queue.declare",
    "queue.declare-ok", "queue.bind", "queue.bind-ok", "queue.purge", "queue.purge-ok",
    "queue.delete", "queue.delete-ok", "queue.unbind", "queue.unbind-ok", "basic.qos",
    "basic.qos-ok", "basic.consume", "basic.consume-ok", "basic.cancel", "basic.cancel-ok",
    "basic.publish", "basic.return", "basic.deliver", "basic.get", "basic.get-ok",
    "basic.get-empty", "basic.ack", "basic.reject", "basic.recover-async", "basic.recover",
    "basic.recover-ok", "basic.nack", "confirm.select", "confirm.select-ok", "tx.select",
    "tx.select-ok", "tx.commit", "tx.commit-ok", "tx.rollback", "tx.rollback-ok",
};
// clang-format on
static_assert(std::size(method_names) == std::variant_size_v<method>);

const auto& method_table() {
    static const auto table = [] {
        auto t = make_method_table(std::make_index_sequence<std::variant_size_v<method>>{});
        for (std::size_t i = 0; i < t.size(); ++i) {
            t[i].name = method_names[i];
        }
        return t;
    }();
    return table;
}

const method_info* find_method(method_key key) noexcept {
    for (const auto& info : method_table()) {
        if (info.key == key) {
            return &info;
        }
    }
    return nullptr;
}

std::string_view class_name(std::uint16_t class_id) noexcept {
    switch (class_id) {
        case 10:
            return "connection";
        case 20:
            return "channel";
        case 30:
            return "access";
        case 40:
            return "exchange";
        case 50:
            return "queue";
        case 60:
            return "basic";
        case 85:
            return "confirm";
        case 90:
            return "tx";
        default:
            return {};
    }
}

field_table capabilities_table() {
    field_table t;
    for (const char* name : {"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                             "consumer_cancel_notify", "connection.blocked",
                             "authentication_failure_close", "per_consumer_qos"}) {
        t.entries.push_back({name, true});
    }
    return t;
}

}  // namespace

method_key key_of(const method& m) noexcept {
    return std::visit([](const auto& v) { return std::decay_t<decltype(v)>::id; }, m);
}

std::string_view method_name(method_key key) noexcept {
    const method_info* info = find_method(key);
    return info ? info->name : std::string_view{};
}

std::string describe(method_key key) {
    const std::string_view name = method_name(key);
    if (!name.empty()) {
        return std::string(name);
    }
    return "class " + std::to_string(key.class_id) + " method " + std::to_string(key.method_id);
}

peer method_sender(method_key key) noexcept {
    const method_info* info = find_method(key);
    return info ? info->sent_by : peer::both;
}

bool has_content(method_key key) noexcept {
    return key == basic_publish::id || key == basic_return::id || key == basic_deliver::id ||
           key == basic_get_ok::id;
}

amqp_result<method> decode_method(std::string_view payload) {
    detail::wire_reader in(payload);
    method_key key;
    if (!in.u16(key.class_id) || !in.u16(key.method_id)) {
        return detail::frame_error("method frame of " + std::to_string(payload.size()) +
                                   " bytes is too short for a class and method id");
    }
    const method_info* info = find_method(key);
    if (info == nullptr) {
        const std::string_view cls = class_name(key.class_id);
        std::string text = cls.empty()
                               ? "unknown method: class " + std::to_string(key.class_id) +
                                     " method " + std::to_string(key.method_id)
                               : "unknown method " + std::to_string(key.method_id) + " of class " +
                                     std::string(cls) + " (" + std::to_string(key.class_id) + ")";
        return amqp_error{reply_code::not_implemented, std::move(text), true, 0, key};
    }
    return info->decode(in.rest());
}

namespace detail {

void method_writer::octet(std::uint8_t v) {
    end_bits(), put_u8(*out_, v);
}
void method_writer::short_uint(std::uint16_t v) {
    end_bits(), put_u16(*out_, v);
}
void method_writer::long_uint(std::uint32_t v) {
    end_bits(), put_u32(*out_, v);
}
void method_writer::longlong(std::uint64_t v) {
    end_bits(), put_u64(*out_, v);
}
void method_writer::shortstr(const std::string& v) {
    end_bits(), put_shortstr(*out_, v);
}
void method_writer::longstr(const std::string& v) {
    end_bits(), put_longstr(*out_, v);
}
void method_writer::table(const field_table& v) {
    end_bits(), encode_table(*out_, v);
}
void method_writer::bit(bool v) {
    if (bit_count_ == 8) {
        bits_at_ = out_->size();
        out_->push_back(0);
        bit_count_ = 0;
    }
    if (v) {
        (*out_)[bits_at_] = static_cast<char>((*out_)[bits_at_] | (1 << bit_count_));
    }
    ++bit_count_;
}

void put_method_ids(std::string& out, method_key key) {
    put_u16(out, key.class_id);
    put_u16(out, key.method_id);
}

}  // namespace detail

void encode_method(std::string& out, const method& m) {
    std::visit([&out](const auto& v) { encode_method(out, v); }, m);
}

connection_close make_connection_close(const amqp_error& error) {
    return {static_cast<std::uint16_t>(error.code), error.text, error.method.class_id,
            error.method.method_id};
}

channel_close make_channel_close(reply_code code, std::string text, method_key cause) {
    return {static_cast<std::uint16_t>(code), std::move(text), cause.class_id, cause.method_id};
}

connection_start make_connection_start(const server_identity& identity) {
    connection_start start;
    auto& props = start.server_properties.entries;
    props.push_back({"product", identity.product});
    props.push_back({"version", identity.version});
    props.push_back({"platform", identity.platform});
    if (!identity.copyright.empty()) {
        props.push_back({"copyright", identity.copyright});
    }
    if (!identity.information.empty()) {
        props.push_back({"information", identity.information});
    }
    props.push_back({"capabilities", capabilities_table()});
    return start;
}

}  // namespace conveyor::protocol::amqp

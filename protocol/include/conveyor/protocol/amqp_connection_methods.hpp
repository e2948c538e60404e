// AMQP 0-9-1 methods of the connection and channel classes: one struct per method, fields in wire
// order with the spec's names (reserved fields kept under their 0-8 names, e.g. `ticket`, so that a
// decoded method encodes back to the same bytes). `fields(s, v)` lists them for the codec in
// amqp_methods.cpp: octet, short_uint, long_uint, longlong, bit (consecutive bits share an
// octet), shortstr, longstr, table. Include amqp_methods.hpp rather than this file.
#pragma once

#include "conveyor/protocol/amqp_table.hpp"
#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <string>

namespace conveyor::protocol::amqp {

// connection.start
struct connection_start {
    static constexpr method_key id{10, 10};
    static constexpr peer sent_by = peer::server;
    std::uint8_t version_major = 0;
    std::uint8_t version_minor = 9;
    field_table server_properties;
    std::string mechanisms{"PLAIN AMQPLAIN"};
    std::string locales{"en_US"};
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.octet(s.version_major);
        v.octet(s.version_minor);
        v.table(s.server_properties);
        v.longstr(s.mechanisms);
        v.longstr(s.locales);
    }
    bool operator==(const connection_start&) const = default;
};

// connection.start-ok
struct connection_start_ok {
    static constexpr method_key id{10, 11};
    static constexpr peer sent_by = peer::client;
    field_table client_properties;
    std::string mechanism;
    std::string response;
    std::string locale;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.table(s.client_properties);
        v.shortstr(s.mechanism);
        v.longstr(s.response);
        v.shortstr(s.locale);
    }
    bool operator==(const connection_start_ok&) const = default;
};

// connection.secure
struct connection_secure {
    static constexpr method_key id{10, 20};
    static constexpr peer sent_by = peer::server;
    std::string challenge;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longstr(s.challenge);
    }
    bool operator==(const connection_secure&) const = default;
};

// connection.secure-ok
struct connection_secure_ok {
    static constexpr method_key id{10, 21};
    static constexpr peer sent_by = peer::client;
    std::string response;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longstr(s.response);
    }
    bool operator==(const connection_secure_ok&) const = default;
};

// connection.tune
struct connection_tune {
    static constexpr method_key id{10, 30};
    static constexpr peer sent_by = peer::server;
    std::uint16_t channel_max = 0;
    std::uint32_t frame_max = 0;
    std::uint16_t heartbeat = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.channel_max);
        v.long_uint(s.frame_max);
        v.short_uint(s.heartbeat);
    }
    bool operator==(const connection_tune&) const = default;
};

// connection.tune-ok
struct connection_tune_ok {
    static constexpr method_key id{10, 31};
    static constexpr peer sent_by = peer::client;
    std::uint16_t channel_max = 0;
    std::uint32_t frame_max = 0;
    std::uint16_t heartbeat = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.channel_max);
        v.long_uint(s.frame_max);
        v.short_uint(s.heartbeat);
    }
    bool operator==(const connection_tune_ok&) const = default;
};

// connection.open
struct connection_open {
    static constexpr method_key id{10, 40};
    static constexpr peer sent_by = peer::client;
    std::string virtual_host;
    std::string capabilities;
    bool insist = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.virtual_host);
        v.shortstr(s.capabilities);
        v.bit(s.insist);
    }
    bool operator==(const connection_open&) const = default;
};

// connection.open-ok
struct connection_open_ok {
    static constexpr method_key id{10, 41};
    static constexpr peer sent_by = peer::server;
    std::string known_hosts;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.known_hosts);
    }
    bool operator==(const connection_open_ok&) const = default;
};

// connection.close
struct connection_close {
    static constexpr method_key id{10, 50};
    static constexpr peer sent_by = peer::both;
    std::uint16_t reply_code = 0;
    std::string reply_text;
    std::uint16_t class_id = 0;
    std::uint16_t method_id = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.reply_code);
        v.shortstr(s.reply_text);
        v.short_uint(s.class_id);
        v.short_uint(s.method_id);
    }
    bool operator==(const connection_close&) const = default;
};

// connection.close-ok
struct connection_close_ok {
    static constexpr method_key id{10, 51};
    static constexpr peer sent_by = peer::both;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const connection_close_ok&) const = default;
};

// connection.blocked
struct connection_blocked {
    static constexpr method_key id{10, 60};
    static constexpr peer sent_by = peer::server;
    std::string reason;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.reason);
    }
    bool operator==(const connection_blocked&) const = default;
};

// connection.unblocked
struct connection_unblocked {
    static constexpr method_key id{10, 61};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const connection_unblocked&) const = default;
};

// connection.update-secret
struct connection_update_secret {
    static constexpr method_key id{10, 70};
    static constexpr peer sent_by = peer::client;
    std::string new_secret;
    std::string reason;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longstr(s.new_secret);
        v.shortstr(s.reason);
    }
    bool operator==(const connection_update_secret&) const = default;
};

// connection.update-secret-ok
struct connection_update_secret_ok {
    static constexpr method_key id{10, 71};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const connection_update_secret_ok&) const = default;
};

// channel.open
struct channel_open {
    static constexpr method_key id{20, 10};
    static constexpr peer sent_by = peer::client;
    std::string out_of_band;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.out_of_band);
    }
    bool operator==(const channel_open&) const = default;
};

// channel.open-ok
struct channel_open_ok {
    static constexpr method_key id{20, 11};
    static constexpr peer sent_by = peer::server;
    std::string channel_id;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longstr(s.channel_id);
    }
    bool operator==(const channel_open_ok&) const = default;
};

// channel.flow
struct channel_flow {
    static constexpr method_key id{20, 20};
    static constexpr peer sent_by = peer::both;
    bool active = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.bit(s.active);
    }
    bool operator==(const channel_flow&) const = default;
};

// channel.flow-ok
struct channel_flow_ok {
    static constexpr method_key id{20, 21};
    static constexpr peer sent_by = peer::both;
    bool active = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.bit(s.active);
    }
    bool operator==(const channel_flow_ok&) const = default;
};

// channel.close
struct channel_close {
    static constexpr method_key id{20, 40};
    static constexpr peer sent_by = peer::both;
    std::uint16_t reply_code = 0;
    std::string reply_text;
    std::uint16_t class_id = 0;
    std::uint16_t method_id = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.reply_code);
        v.shortstr(s.reply_text);
        v.short_uint(s.class_id);
        v.short_uint(s.method_id);
    }
    bool operator==(const channel_close&) const = default;
};

// channel.close-ok
struct channel_close_ok {
    static constexpr method_key id{20, 41};
    static constexpr peer sent_by = peer::both;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const channel_close_ok&) const = default;
};

}  // namespace conveyor::protocol::amqp

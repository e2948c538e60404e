// AMQP 0-9-1 methods of the exchange and queue classes: one struct per method, fields in wire order
// with the spec's names (reserved fields kept under their 0-8 names, e.g. `ticket`, so that a
// decoded method encodes back to the same bytes). `fields(s, v)` lists them for the codec in
// amqp_methods.cpp: octet, short_uint, long_uint, longlong, bit (consecutive bits share an
// octet), shortstr, longstr, table. Include amqp_methods.hpp rather than this file.
#pragma once

#include "conveyor/protocol/amqp_table.hpp"
#include "conveyor/protocol/amqp_types.hpp"

#include <cstdint>
#include <string>

namespace conveyor::protocol::amqp {

// exchange.declare
struct exchange_declare {
    static constexpr method_key id{40, 10};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string exchange;
    std::string type;
    bool passive = false;
    bool durable = false;
    bool auto_delete = false;
    bool internal = false;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.exchange);
        v.shortstr(s.type);
        v.bit(s.passive);
        v.bit(s.durable);
        v.bit(s.auto_delete);
        v.bit(s.internal);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const exchange_declare&) const = default;
};

// exchange.declare-ok
struct exchange_declare_ok {
    static constexpr method_key id{40, 11};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const exchange_declare_ok&) const = default;
};

// exchange.delete
struct exchange_delete {
    static constexpr method_key id{40, 20};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string exchange;
    bool if_unused = false;
    bool no_wait = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.exchange);
        v.bit(s.if_unused);
        v.bit(s.no_wait);
    }
    bool operator==(const exchange_delete&) const = default;
};

// exchange.delete-ok
struct exchange_delete_ok {
    static constexpr method_key id{40, 21};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const exchange_delete_ok&) const = default;
};

// exchange.bind
struct exchange_bind {
    static constexpr method_key id{40, 30};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string destination;
    std::string source;
    std::string routing_key;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.destination);
        v.shortstr(s.source);
        v.shortstr(s.routing_key);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const exchange_bind&) const = default;
};

// exchange.bind-ok
struct exchange_bind_ok {
    static constexpr method_key id{40, 31};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const exchange_bind_ok&) const = default;
};

// exchange.unbind
struct exchange_unbind {
    static constexpr method_key id{40, 40};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string destination;
    std::string source;
    std::string routing_key;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.destination);
        v.shortstr(s.source);
        v.shortstr(s.routing_key);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const exchange_unbind&) const = default;
};

// exchange.unbind-ok
struct exchange_unbind_ok {
    static constexpr method_key id{40, 51};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const exchange_unbind_ok&) const = default;
};

// queue.declare
struct queue_declare {
    static constexpr method_key id{50, 10};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    bool passive = false;
    bool durable = false;
    bool exclusive = false;
    bool auto_delete = false;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.bit(s.passive);
        v.bit(s.durable);
        v.bit(s.exclusive);
        v.bit(s.auto_delete);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const queue_declare&) const = default;
};

// queue.declare-ok
struct queue_declare_ok {
    static constexpr method_key id{50, 11};
    static constexpr peer sent_by = peer::server;
    std::string queue;
    std::uint32_t message_count = 0;
    std::uint32_t consumer_count = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.queue);
        v.long_uint(s.message_count);
        v.long_uint(s.consumer_count);
    }
    bool operator==(const queue_declare_ok&) const = default;
};

// queue.bind
struct queue_bind {
    static constexpr method_key id{50, 20};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    std::string exchange;
    std::string routing_key;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const queue_bind&) const = default;
};

// queue.bind-ok
struct queue_bind_ok {
    static constexpr method_key id{50, 21};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const queue_bind_ok&) const = default;
};

// queue.purge
struct queue_purge {
    static constexpr method_key id{50, 30};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    bool no_wait = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.bit(s.no_wait);
    }
    bool operator==(const queue_purge&) const = default;
};

// queue.purge-ok
struct queue_purge_ok {
    static constexpr method_key id{50, 31};
    static constexpr peer sent_by = peer::server;
    std::uint32_t message_count = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.long_uint(s.message_count);
    }
    bool operator==(const queue_purge_ok&) const = default;
};

// queue.delete
struct queue_delete {
    static constexpr method_key id{50, 40};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    bool if_unused = false;
    bool if_empty = false;
    bool no_wait = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.bit(s.if_unused);
        v.bit(s.if_empty);
        v.bit(s.no_wait);
    }
    bool operator==(const queue_delete&) const = default;
};

// queue.delete-ok
struct queue_delete_ok {
    static constexpr method_key id{50, 41};
    static constexpr peer sent_by = peer::server;
    std::uint32_t message_count = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.long_uint(s.message_count);
    }
    bool operator==(const queue_delete_ok&) const = default;
};

// queue.unbind
struct queue_unbind {
    static constexpr method_key id{50, 50};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    std::string exchange;
    std::string routing_key;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
        v.table(s.arguments);
    }
    bool operator==(const queue_unbind&) const = default;
};

// queue.unbind-ok
struct queue_unbind_ok {
    static constexpr method_key id{50, 51};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const queue_unbind_ok&) const = default;
};

}  // namespace conveyor::protocol::amqp

// AMQP 0-9-1 methods of the basic, confirm and tx classes: one struct per method, fields in wire
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

// basic.qos
struct basic_qos {
    static constexpr method_key id{60, 10};
    static constexpr peer sent_by = peer::client;
    std::uint32_t prefetch_size = 0;
    std::uint16_t prefetch_count = 0;
    bool global = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.long_uint(s.prefetch_size);
        v.short_uint(s.prefetch_count);
        v.bit(s.global);
    }
    bool operator==(const basic_qos&) const = default;
};

// basic.qos-ok
struct basic_qos_ok {
    static constexpr method_key id{60, 11};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const basic_qos_ok&) const = default;
};

// basic.consume
struct basic_consume {
    static constexpr method_key id{60, 20};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    std::string consumer_tag;
    bool no_local = false;
    bool no_ack = false;
    bool exclusive = false;
    bool no_wait = false;
    field_table arguments;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.shortstr(s.consumer_tag);
        v.bit(s.no_local);
        v.bit(s.no_ack);
        v.bit(s.exclusive);
        v.bit(s.no_wait);
        v.table(s.arguments);
    }
    bool operator==(const basic_consume&) const = default;
};

// basic.consume-ok
struct basic_consume_ok {
    static constexpr method_key id{60, 21};
    static constexpr peer sent_by = peer::server;
    std::string consumer_tag;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.consumer_tag);
    }
    bool operator==(const basic_consume_ok&) const = default;
};

// basic.cancel
struct basic_cancel {
    static constexpr method_key id{60, 30};
    static constexpr peer sent_by = peer::both;
    std::string consumer_tag;
    bool no_wait = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.consumer_tag);
        v.bit(s.no_wait);
    }
    bool operator==(const basic_cancel&) const = default;
};

// basic.cancel-ok
struct basic_cancel_ok {
    static constexpr method_key id{60, 31};
    static constexpr peer sent_by = peer::both;
    std::string consumer_tag;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.consumer_tag);
    }
    bool operator==(const basic_cancel_ok&) const = default;
};

// basic.publish
struct basic_publish {
    static constexpr method_key id{60, 40};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string exchange;
    std::string routing_key;
    bool mandatory = false;
    bool immediate = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
        v.bit(s.mandatory);
        v.bit(s.immediate);
    }
    bool operator==(const basic_publish&) const = default;
};

// basic.return
struct basic_return {
    static constexpr method_key id{60, 50};
    static constexpr peer sent_by = peer::server;
    std::uint16_t reply_code = 0;
    std::string reply_text;
    std::string exchange;
    std::string routing_key;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.reply_code);
        v.shortstr(s.reply_text);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
    }
    bool operator==(const basic_return&) const = default;
};

// basic.deliver
struct basic_deliver {
    static constexpr method_key id{60, 60};
    static constexpr peer sent_by = peer::server;
    std::string consumer_tag;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::string exchange;
    std::string routing_key;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.consumer_tag);
        v.longlong(s.delivery_tag);
        v.bit(s.redelivered);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
    }
    bool operator==(const basic_deliver&) const = default;
};

// basic.get
struct basic_get {
    static constexpr method_key id{60, 70};
    static constexpr peer sent_by = peer::client;
    std::uint16_t ticket = 0;
    std::string queue;
    bool no_ack = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.short_uint(s.ticket);
        v.shortstr(s.queue);
        v.bit(s.no_ack);
    }
    bool operator==(const basic_get&) const = default;
};

// basic.get-ok
struct basic_get_ok {
    static constexpr method_key id{60, 71};
    static constexpr peer sent_by = peer::server;
    std::uint64_t delivery_tag = 0;
    bool redelivered = false;
    std::string exchange;
    std::string routing_key;
    std::uint32_t message_count = 0;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longlong(s.delivery_tag);
        v.bit(s.redelivered);
        v.shortstr(s.exchange);
        v.shortstr(s.routing_key);
        v.long_uint(s.message_count);
    }
    bool operator==(const basic_get_ok&) const = default;
};

// basic.get-empty
struct basic_get_empty {
    static constexpr method_key id{60, 72};
    static constexpr peer sent_by = peer::server;
    std::string cluster_id;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.shortstr(s.cluster_id);
    }
    bool operator==(const basic_get_empty&) const = default;
};

// basic.ack
struct basic_ack {
    static constexpr method_key id{60, 80};
    static constexpr peer sent_by = peer::both;
    std::uint64_t delivery_tag = 0;
    bool multiple = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longlong(s.delivery_tag);
        v.bit(s.multiple);
    }
    bool operator==(const basic_ack&) const = default;
};

// basic.reject
struct basic_reject {
    static constexpr method_key id{60, 90};
    static constexpr peer sent_by = peer::client;
    std::uint64_t delivery_tag = 0;
    bool requeue = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longlong(s.delivery_tag);
        v.bit(s.requeue);
    }
    bool operator==(const basic_reject&) const = default;
};

// basic.recover-async
struct basic_recover_async {
    static constexpr method_key id{60, 100};
    static constexpr peer sent_by = peer::client;
    bool requeue = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.bit(s.requeue);
    }
    bool operator==(const basic_recover_async&) const = default;
};

// basic.recover
struct basic_recover {
    static constexpr method_key id{60, 110};
    static constexpr peer sent_by = peer::client;
    bool requeue = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.bit(s.requeue);
    }
    bool operator==(const basic_recover&) const = default;
};

// basic.recover-ok
struct basic_recover_ok {
    static constexpr method_key id{60, 111};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const basic_recover_ok&) const = default;
};

// basic.nack
struct basic_nack {
    static constexpr method_key id{60, 120};
    static constexpr peer sent_by = peer::both;
    std::uint64_t delivery_tag = 0;
    bool multiple = false;
    bool requeue = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.longlong(s.delivery_tag);
        v.bit(s.multiple);
        v.bit(s.requeue);
    }
    bool operator==(const basic_nack&) const = default;
};

// confirm.select
struct confirm_select {
    static constexpr method_key id{85, 10};
    static constexpr peer sent_by = peer::client;
    bool no_wait = false;
    template <class S, class V>
    static void fields(S& s, V& v) {
        v.bit(s.no_wait);
    }
    bool operator==(const confirm_select&) const = default;
};

// confirm.select-ok
struct confirm_select_ok {
    static constexpr method_key id{85, 11};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const confirm_select_ok&) const = default;
};

// tx.select
struct tx_select {
    static constexpr method_key id{90, 10};
    static constexpr peer sent_by = peer::client;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_select&) const = default;
};

// tx.select-ok
struct tx_select_ok {
    static constexpr method_key id{90, 11};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_select_ok&) const = default;
};

// tx.commit
struct tx_commit {
    static constexpr method_key id{90, 20};
    static constexpr peer sent_by = peer::client;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_commit&) const = default;
};

// tx.commit-ok
struct tx_commit_ok {
    static constexpr method_key id{90, 21};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_commit_ok&) const = default;
};

// tx.rollback
struct tx_rollback {
    static constexpr method_key id{90, 30};
    static constexpr peer sent_by = peer::client;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_rollback&) const = default;
};

// tx.rollback-ok
struct tx_rollback_ok {
    static constexpr method_key id{90, 31};
    static constexpr peer sent_by = peer::server;
    template <class S, class V>
    static void fields(S&, V&) {}
    bool operator==(const tx_rollback_ok&) const = default;
};

}  // namespace conveyor::protocol::amqp

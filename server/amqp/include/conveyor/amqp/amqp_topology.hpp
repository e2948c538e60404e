// AMQP 0-9-1 exchanges, queues and bindings of the single virtual host, and routing (docs/amqp.md).
// Pure state: no sockets, no clock reads (time comes in as `now_us`, core monotonic
// microseconds), no broker core. AMQP queues ARE Conveyor queues: this table only holds what
// AMQP adds to a queue (declared flags, arguments, owner, consumer count); the tasks are in the
// core, and the caller deletes or purges them there when this table says so.
//
// Errors are amqp_errors with the reply code and the RabbitMQ wording, e.g.
//   404 "NOT_FOUND - no queue 'x' in vhost '/'"
//   406 "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'x' in vhost '/':
//        received 'true' but current is 'false'"
//   405 "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'x' in vhost '/'.
//        It could be originally declared on another connection or the exclusive property
//        value does not match that of the original declaration."
//   403 "ACCESS_REFUSED - exchange name 'amq.x' contains reserved prefix 'amq.*'"
//   503 "COMMAND_INVALID - invalid exchange type 'x'" (connection_error = true)
// Channel errors have connection_error = false; the caller fills in the channel and method.
#pragma once

#include <conveyor/protocol/amqp_table.hpp>
#include <conveyor/protocol/amqp_types.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace conveyor::server {

enum class exchange_kind : std::uint8_t { direct, fanout, topic, headers };
std::optional<exchange_kind> parse_exchange_kind(std::string_view type);
std::string_view to_string(exchange_kind kind) noexcept;

// The queue arguments the broker acts on, read from x-arguments at declaration.
struct queue_args {
    std::optional<int> max_priority;             // x-max-priority, 0..255
    std::optional<std::int64_t> message_ttl_ms;  // x-message-ttl, >= 0
    std::optional<std::int64_t> expires_ms;      // x-expires, > 0
    std::optional<std::int64_t> max_length;      // x-max-length, >= 0: ready messages
    bool reject_publish = false;                 // x-overflow reject-publish (else drop-head)
    bool single_active_consumer = false;         // x-single-active-consumer
};

struct amqp_queue {
    std::string name;
    bool durable = false;
    bool exclusive = false;
    bool auto_delete = false;
    // Registered by adopt_queue (a core queue used over AMQP), not declared: saved only while a
    // durable binding needs it, so that using a queue (a passive declare) writes nothing.
    bool adopted = false;
    std::uint64_t owner = 0;  // connection id of an exclusive queue's declarer, else 0
    protocol::amqp::field_table arguments;  // as declared (equivalence checks, persistence)
    queue_args args;
    std::size_t consumers = 0;
    bool had_consumer = false;      // auto-delete applies once a consumer has come and gone
    std::int64_t last_used_us = 0;  // declare, consume, get, cancel: for x-expires
};

struct amqp_exchange {
    std::string name;
    exchange_kind kind = exchange_kind::direct;
    bool durable = false;
    bool auto_delete = false;
    bool internal = false;
    bool builtin = false;  // "" and amq.*: cannot be deleted or redeclared differently
    protocol::amqp::field_table arguments;
};

struct amqp_binding {
    std::string source;       // exchange
    std::string destination;  // queue, or exchange when to_exchange
    bool to_exchange = false;
    std::string key;
    protocol::amqp::field_table arguments;
    bool operator==(const amqp_binding& o) const {
        return source == o.source && destination == o.destination && to_exchange == o.to_exchange &&
               key == o.key && arguments == o.arguments;
    }
};

// Reads x-max-priority, x-message-ttl, x-expires (any integer tag; RabbitMQ's bounds). A value
// of the wrong type or out of range is 406 PRECONDITION_FAILED, worded as RabbitMQ does
// ("invalid arg 'x-max-priority' for queue 'q' in vhost '/': ...").
protocol::amqp::amqp_result<queue_args> parse_queue_args(std::string_view queue,
                                                         const protocol::amqp::field_table& args);

// Topic matching: `pattern` words separated by '.', `*` one word, `#` zero or more words.
bool topic_matches(std::string_view pattern, std::string_view routing_key);

class amqp_topology {
public:
    // Predeclares the default exchange "" (direct) and amq.direct, amq.fanout, amq.topic,
    // amq.headers, amq.match (all durable, builtin).
    amqp_topology();

    using error = protocol::amqp::amqp_error;

    // ---- exchanges ------------------------------------------------------------------------
    // exchange.declare. Passive: 404 when missing. Otherwise creates it, or checks an existing
    // one is equivalent (type, durable, auto_delete, internal: 406 inequivalent arg). Names
    // starting "amq." that do not exist: 403. Unknown type: 503 (connection error).
    std::optional<error> declare_exchange(std::string_view name, std::string_view type,
                                          bool passive, bool durable, bool auto_delete,
                                          bool internal,
                                          const protocol::amqp::field_table& arguments);
    // exchange.delete: 404 when missing (RabbitMQ 3.x answers Delete-Ok instead: we follow it,
    // returning no error); builtin ones 403; if_unused with bindings from it: 406. Removes
    // bindings from and to it.
    std::optional<error> delete_exchange(std::string_view name, bool if_unused);
    const amqp_exchange* find_exchange(std::string_view name) const;

    // ---- queues ---------------------------------------------------------------------------
    struct declared {
        amqp_queue* queue = nullptr;
        bool created = false;
    };
    // queue.declare for a non-empty name (the caller generates server names). Passive: 404
    // when missing (the caller may first adopt a queue the core knows, see adopt_queue), 405
    // when exclusive to another connection. Otherwise creates it or checks equivalence
    // (durable, exclusive, auto_delete, and the x-arguments listed above: 406). Names
    // starting "amq." that do not exist: 403. Updates last_used_us.
    protocol::amqp::amqp_result<declared> declare_queue(
        std::string_view name, bool passive, bool durable, bool exclusive, bool auto_delete,
        const protocol::amqp::field_table& arguments, std::uint64_t connection,
        std::int64_t now_us);
    // Registers a plain queue (durable, no arguments) that exists in the core (created over
    // RESP) so that AMQP may use it; no-op if it is declared already. Not a durable change: the
    // queue is saved once declared (not passive) or bound from a durable exchange.
    amqp_queue& adopt_queue(std::string_view name, std::int64_t now_us);
    amqp_queue* find_queue(std::string_view name);
    const amqp_queue* find_queue(std::string_view name) const;
    // 405 when `name` is exclusive to a connection other than `connection`; else nullopt.
    std::optional<error> check_access(const amqp_queue& q, std::uint64_t connection) const;
    // Removes the queue and every binding to it (the caller deletes its tasks in the core).
    void remove_queue(std::string_view name);

    // Consumers: added/removed by basic.consume / basic.cancel / channel close. consumer_removed
    // returns true when the queue is auto-delete and now has none (the caller removes it).
    void consumer_added(amqp_queue& q, std::int64_t now_us);
    bool consumer_removed(amqp_queue& q, std::int64_t now_us);
    // Exclusive queues of a connection that closed (the caller removes them).
    std::vector<std::string> queues_owned_by(std::uint64_t connection) const;
    // Queues whose x-expires ran out by `now_us`: no consumers and unused for that long.
    std::vector<std::string> expired_queues(std::int64_t now_us) const;
    // Earliest time (us) a queue can expire, for the caller's timer; nullopt when none can.
    std::optional<std::int64_t> next_expiry() const;

    // ---- bindings -------------------------------------------------------------------------
    // queue.bind / exchange.bind: 404 when the source or destination is missing ("no exchange
    // 'x' in vhost '/'", "no queue 'q' in vhost '/'"); binding to or from the default exchange:
    // 403 ("operation not permitted on the default exchange"). Binding twice is a no-op.
    std::optional<error> bind(const amqp_binding& b);
    // queue.unbind / exchange.unbind: 404 when the source or destination is missing; unbinding
    // something not bound is fine. An auto-delete exchange left without bindings from it is
    // deleted (RabbitMQ).
    std::optional<error> unbind(const amqp_binding& b);

    // ---- routing --------------------------------------------------------------------------
    // The queues a message published to `exchange` with `routing_key` goes to, each once, in a
    // stable order. The default exchange routes to the declared queue named `routing_key`
    // (nothing when none is declared: the caller may adopt a core queue first). Exchange-to-
    // exchange bindings are followed (cycles visited once). Headers exchanges match
    // x-match all/any against `headers` (null: none). Missing exchange: 404 (channel error).
    protocol::amqp::amqp_result<std::vector<std::string>> route(
        std::string_view exchange, std::string_view routing_key,
        const protocol::amqp::field_table* headers) const;

    // ---- persistence ----------------------------------------------------------------------
    // Durable, non-builtin exchanges, durable non-exclusive queues (adopted ones only while a
    // durable binding leads to them), and the bindings between durable entities, as a JSON
    // document (written to the data directory by the caller).
    std::string save() const;
    // Loads what save() wrote into a fresh topology. On a parse error returns a message and
    // leaves the topology as it was.
    std::optional<std::string> load(std::string_view json, std::int64_t now_us);
    // True when durable state changed since the last call (the caller then saves).
    bool take_durable_change() noexcept;

    std::size_t queue_count() const noexcept { return queues_.size(); }
    std::size_t exchange_count() const noexcept { return exchanges_.size(); }

private:
    struct string_hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept {
            return std::hash<std::string_view>{}(s);
        }
    };
    template <class T>
    using name_map = std::unordered_map<std::string, T, string_hash, std::equal_to<>>;
    using name_set = std::set<std::string, std::less<>>;

    // Where a binding delivers, as kept in the direct-routing index.
    struct destination {
        std::string name;
        bool to_exchange = false;
        bool operator==(const destination&) const = default;
    };
    struct exchange_entry {
        amqp_exchange exchange;
        std::vector<amqp_binding> bindings;         // from this exchange, in bind order
        name_map<std::vector<destination>> by_key;  // routing key -> destinations (direct)
        name_set bound_from;                        // exchanges with a binding to this one
    };
    struct queue_entry {
        amqp_queue queue;
        name_set bound_from;  // exchanges with a binding to this queue
    };

    exchange_entry& add_exchange(std::string_view name, exchange_kind kind, bool durable,
                                 bool auto_delete, bool internal, bool builtin,
                                 const protocol::amqp::field_table& arguments);
    bool is_durable(const amqp_binding& b) const;
    bool is_bound(const exchange_entry& source, const amqp_binding& b) const;
    void add_binding(exchange_entry& source, const amqp_binding& b);
    // Removes the bindings of `source` that `pred` selects; true when any was removed.
    bool remove_bindings_if(exchange_entry& source,
                            const std::function<bool(const amqp_binding&)>& pred);
    // Erases an exchange with its bindings from and to it; the sources that lost a binding
    // are appended to `candidates` (auto-delete).
    void erase_exchange(std::string_view name, std::vector<std::string>& candidates);
    // Deletes the auto-delete exchanges among `candidates` left without bindings, cascading.
    void auto_delete_exchanges(std::vector<std::string> candidates);

    name_map<exchange_entry> exchanges_;
    name_map<queue_entry> queues_;
    bool durable_changed_ = false;
};

}  // namespace conveyor::server

// The AMQP virtual host "/" the sessions share (docs/amqp.md): the topology (exchanges, queues,
// bindings) and its file, consumers by queue, x-expires; and the envelope an AMQP message's
// routing data travel in with its task.
//
// AMQP queues are Conveyor queues: a publish is an ENQUEUE (the body is the payload; the
// exchange, routing key and content properties travel with the task as opaque bytes), a
// delivery is a LEASE (lease length --amqp-consumer-timeout), basic.ack is ACK, basic.nack /
// basic.reject with requeue is RELEASE and without it FAIL (dead letters), and a channel or
// connection that ends with unacknowledged deliveries releases them (redelivered).
#pragma once

#include <conveyor/amqp/amqp_channel.hpp>
#include <conveyor/amqp/amqp_topology.hpp>
#include <conveyor/runtime/broker_service.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace conveyor::server {

// What the exchange, routing key and properties of a message become in the task: opaque bytes
// for the core ("properties"), decoded again at delivery. A task enqueued over RESP has none:
// it is delivered as published to the default exchange with its queue's name as routing key.
struct amqp_envelope {
    std::string_view exchange;
    std::string_view routing_key;
    std::string_view raw_properties;  // content header property flags and list
};
std::string encode_envelope(std::string_view exchange, std::string_view routing_key,
                            std::string_view raw_properties);
amqp_envelope decode_envelope(std::string_view bytes, std::string_view queue);
// The envelope of a message routed to an exclusive queue carries a mark (its version byte), so
// that a restart, which no exclusive queue survives, can find their tasks (amqp_restart.cpp).
void mark_envelope_exclusive(std::string& envelope, bool exclusive);
bool envelope_marks_exclusive(std::string_view bytes) noexcept;

class amqp_vhost {
public:
    explicit amqp_vhost(broker_service& service);

    broker_service& service() noexcept { return service_; }
    amqp_topology& topology() noexcept { return topology_; }

    // Reads <data-dir>/amqp-topology.json (durable exchanges, queues, bindings). A message when
    // the file exists but cannot be used.
    std::optional<std::string> load();
    // At start, after load(): deletes in the core the queues that were exclusive (their tasks
    // carry the envelope's exclusive mark) and that the topology does not declare as durable.
    // Their connections are gone, and RabbitMQ drops exclusive queues at restart too. Returns
    // how many it deleted (amqp_restart.cpp).
    std::size_t drop_exclusive_queues();
    // Writes the file again when durable state changed (after each method, and after
    // deletions the broker makes: x-expires, auto-delete, a closed connection's exclusive
    // queues). A full disk is logged and the file written at the next change.
    void save_if_changed();
    // A method changing a durable exchange, queue or binding (declare, delete, bind, unbind)
    // answers only once the file holds the change. It takes a copy of the topology before the
    // change when `durable` (nullopt otherwise), changes the topology, then calls
    // commit_durable_change: the file is written when durable state changed; on a full disk
    // (ENOSPC, EDQUOT) the topology goes back to the copy and the method gets 506
    // RESOURCE_ERROR naming the file and the reason. Any other write error stops the server
    // (fail-stop), as a failed log write does. Without a copy a full disk is only logged.
    std::optional<amqp_topology> before_durable_change(bool durable) const;
    std::optional<protocol::amqp::amqp_error> commit_durable_change(
        std::optional<amqp_topology>& before);

    // The queue `name` as AMQP may use it: declared, or adopted from the core (created over
    // RESP). nullptr when neither.
    amqp_queue* find_queue(std::string_view name);
    // Deletes a queue: its tasks in the core, its bindings, and its consumers, which get
    // basic.cancel (consumer_cancel_notify). Returns the ready messages it held.
    std::size_t delete_queue(std::string_view name);

    void add_consumer(amqp_consumer& c);
    void remove_consumer(amqp_consumer& c);
    std::size_t consumer_count(std::string_view queue) const;
    bool has_exclusive_consumer(std::string_view queue) const;
    // The queue's oldest consumer: the one that receives under x-single-active-consumer.
    amqp_consumer* active_consumer(std::string_view queue) const;

    // "amq.gen-<22 random chars>", "amq.ctag-<22 random chars>".
    std::string generate_name(std::string_view prefix);

    // Deletes queues whose x-expires ran out; runs until stop().
    boost::asio::awaitable<void> run_expiry();
    void stop();

private:
    // Writes the file: no error, or the error of a full disk (other errors stop the server).
    std::error_code write_file();
    std::string file_path() const;

    broker_service& service_;
    amqp_topology topology_;
    std::unordered_multimap<std::string, amqp_consumer*> consumers_;
    std::uint64_t name_counter_ = 0;
    std::uint64_t consumer_order_ = 0;
    std::uint64_t name_seed_ = 0;
    boost::asio::steady_timer expiry_timer_;
    bool stopped_ = false;
};

}  // namespace conveyor::server

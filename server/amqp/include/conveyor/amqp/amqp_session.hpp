// The AMQP 0-9-1 front-end (docs/amqp.md): one amqp_session per client connection, and the
// amqp_vhost they share (exchanges, queues and bindings, consumers by queue, x-expires).
//
// AMQP queues are Conveyor queues: a publish is an ENQUEUE (the body is the payload; the
// exchange, routing key and content properties travel with the task as opaque bytes), a
// delivery is a LEASE (lease length --amqp-consumer-timeout), basic.ack is ACK, basic.nack /
// basic.reject with requeue is RELEASE and without it FAIL (dead letters), and a channel or
// connection that ends with unacknowledged deliveries releases them (redelivered).
//
// The session is the network layer (socket, reads, writes, heartbeats); the protocol decisions
// are in its handlers (amqp_session.cpp: connection and channel methods; amqp_basic.cpp:
// exchanges, queues, publish, consume). Everything runs on the core thread (THREADING.md).
#pragma once

#include <conveyor/amqp/amqp_topology.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/client_state.hpp>
#include <conveyor/runtime/session.hpp>

#include <conveyor/protocol/amqp_command.hpp>
#include <conveyor/protocol/amqp_content.hpp>
#include <conveyor/protocol/amqp_methods.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace conveyor::server {

class amqp_session;

// A basic.consume: waits in the core as a leaser of its queue while it has credit.
struct amqp_consumer final : waiting_client {
    amqp_session* session = nullptr;
    std::uint16_t channel = 0;
    std::string tag;
    std::string queue;
    bool no_ack = false;
    bool exclusive = false;
    std::uint16_t prefetch = 0;  // per-consumer limit (basic.qos global=false); 0: none
    std::size_t unacked = 0;
    std::optional<core::waiter_id> waiter;  // set while it waits in the core

    void on_leased(std::span<const core::leased_task> tasks) override;
};

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
    // Writes the file again when durable state changed (after each method that may change it).
    void save_if_changed();

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

    // "amq.gen-<22 random chars>", "amq.ctag-<22 random chars>".
    std::string generate_name(std::string_view prefix);

    // Deletes queues whose x-expires ran out; runs until stop().
    boost::asio::awaitable<void> run_expiry();
    void stop();

private:
    broker_service& service_;
    amqp_topology topology_;
    std::unordered_multimap<std::string, amqp_consumer*> consumers_;
    std::uint64_t name_counter_ = 0;
    std::uint64_t name_seed_ = 0;
    boost::asio::steady_timer expiry_timer_;
    bool stopped_ = false;
};

class amqp_session final : public server_session,
                           public std::enable_shared_from_this<amqp_session> {
public:
    amqp_session(boost::asio::ip::tcp::socket socket, amqp_vhost& vhost, std::uint64_t id);
    ~amqp_session() override;

    boost::asio::awaitable<void> run();
    void close() override;
    bool idle_longer_than(std::int64_t now_mono_us,
                          std::int64_t timeout_us) const noexcept override;
    const client_state& client() const noexcept override { return client_; }
    // After a reload: a removed user's connection is closed (320), consumers its new rules
    // do not allow are cancelled.
    void access_changed() override;

    // ---- called by consumers and the vhost ------------------------------------------------
    void consumer_leased(amqp_consumer& c, std::span<const core::leased_task> tasks);
    void consumer_cancelled_by_broker(amqp_consumer& c);

private:
    using amqp_error = protocol::amqp::amqp_error;

    struct unacked_delivery {
        std::string lease;
        amqp_consumer* consumer = nullptr;  // null for basic.get (or after basic.cancel)
        bool counted = false;  // counts for the channel's prefetch (a consumer's delivery)
    };
    struct pending_confirm {
        std::uint64_t seq = 0;
        std::uint64_t position = 0;  // log position the ack waits for
        bool ack = true;             // false: basic.nack (refused)
    };
    struct channel {
        std::uint16_t number = 0;
        bool closing = false;  // Channel.Close sent; waiting for Close-Ok
        bool confirm = false;
        std::uint64_t publish_seq = 0;
        std::uint16_t consumer_prefetch = 0;  // basic.qos global=false
        std::uint16_t channel_prefetch = 0;   // basic.qos global=true
        std::size_t unacked_count = 0;        // deliveries of consumers that count for qos
        std::uint64_t next_tag = 1;
        std::map<std::uint64_t, unacked_delivery> unacked;
        std::map<std::string, std::unique_ptr<amqp_consumer>, std::less<>> consumers;
        std::deque<pending_confirm> confirms;
    };
    enum class phase : std::uint8_t {
        header,
        start_ok,
        authenticating,
        tune_ok,
        open,
        running,
        closing,
        closed
    };

    // ---- I/O (amqp_session.cpp) -----------------------------------------------------------
    boost::asio::awaitable<void> read_loop();
    boost::asio::awaitable<void> write_loop();
    boost::asio::awaitable<void> heartbeat_loop();
    boost::asio::awaitable<void> confirm_loop();
    // Flow control (docs/amqp.md): true when `cmd` is a basic.publish that the admission
    // policy refuses now; it is kept (held_publish_), the connection is blocked
    // (connection.blocked to clients that announce the capability), and its input waits in
    // wait_unblocked until work is admitted again, which runs `cmd` first.
    bool hold_publish(protocol::amqp::command& cmd);
    boost::asio::awaitable<void> wait_unblocked();
    void wake_writer();
    void process_input();
    void end_session();
    void after_batch();

    // ---- connection class ----------------------------------------------------------------
    void on_header();
    void on_command(protocol::amqp::command& cmd);
    void on_connection_method(protocol::amqp::command& cmd);
    void on_start_ok(const protocol::amqp::connection_start_ok& m);
    void finish_auth(const access_control::auth_verdict& verdict);
    void refuse_login(std::string_view mechanism);
    void on_tune_ok(const protocol::amqp::connection_tune_ok& m);
    void connection_error(const amqp_error& e);
    void close_connection(protocol::amqp::reply_code code, std::string text,
                          protocol::amqp::method_key cause = {});

    // ---- channels -------------------------------------------------------------------------
    void on_channel_method(protocol::amqp::command& cmd);
    void channel_error(channel& ch, protocol::amqp::reply_code code, std::string text,
                       protocol::amqp::method_key cause);
    void channel_error(channel& ch, const amqp_error& e, protocol::amqp::method_key cause);
    void end_channel(channel& ch);
    template <class M>
    void send(std::uint16_t channel, const M& m) {
        protocol::amqp::encode_method_frame(out_, channel, m);
    }

    // ---- exchanges, queues, basic, confirm (amqp_basic.cpp) ------------------------------
    // Each returns an error for a channel exception (or a connection one) to the dispatcher.
    std::optional<amqp_error> handle(channel& ch, protocol::amqp::command& cmd);
    std::optional<amqp_error> exchange_declare(channel& ch,
                                               const protocol::amqp::exchange_declare& m);
    std::optional<amqp_error> queue_declare(channel& ch, const protocol::amqp::queue_declare& m);
    std::optional<amqp_error> queue_delete(channel& ch, const protocol::amqp::queue_delete& m);
    std::optional<amqp_error> queue_purge(channel& ch, const protocol::amqp::queue_purge& m);
    std::optional<amqp_error> publish(channel& ch, protocol::amqp::command& cmd);
    std::optional<amqp_error> consume(channel& ch, const protocol::amqp::basic_consume& m);
    std::optional<amqp_error> cancel(channel& ch, std::string_view tag, bool reply, bool no_wait);
    std::optional<amqp_error> get(channel& ch, const protocol::amqp::basic_get& m);
    std::optional<amqp_error> settle(channel& ch, std::uint64_t tag, bool multiple,
                                     std::optional<bool> requeue);
    std::optional<amqp_error> qos(channel& ch, const protocol::amqp::basic_qos& m);
    void recover(channel& ch);

    // ---- permissions (amqp_access.cpp; the mapping onto verbs is at its top) -------------
    // The queue for a method naming it, checked for existence, exclusivity and `need`.
    protocol::amqp::amqp_result<amqp_queue*> usable_queue(std::string_view name,
                                                          std::optional<auth::verb> need);
    std::optional<amqp_error> check_verb(std::string_view queue, auth::verb v);
    std::optional<amqp_error> check_exchange(std::string_view exchange, auth::verb v);
    // ACCESS_REFUSED unless one of `verbs` is granted on `name` (a queue or an exchange, as
    // `kind` says); `needs` words the verbs for the message.
    std::optional<amqp_error> check_access(std::string_view kind, std::string_view name,
                                           std::initializer_list<auth::verb> verbs,
                                           std::string_view needs);
    // The exchange side of exchange.* and queue.bind/unbind; nullopt for other methods.
    std::optional<amqp_error> exchange_access(const protocol::amqp::method& m);
    std::optional<amqp_error> publish_access(const protocol::amqp::basic_publish& m);
    // Closes the connection with 320 CONNECTION_FORCED when its user is no longer in the
    // users file (true then).
    bool forced_out();
    void enqueue_refused(channel& ch, std::string text);
    void confirm(channel& ch, bool ack);
    void return_message(channel& ch, const protocol::amqp::command& cmd,
                        protocol::amqp::reply_code code, std::string_view text);
    void pump(amqp_consumer& c);
    void pump_channel(channel& ch);
    void pump_all();
    std::size_t credit(const channel& ch, const amqp_consumer& c) const;
    void deliver(channel& ch, amqp_consumer* c, const core::leased_task& t,
                 std::optional<std::uint32_t> get_count);
    // Appends `body` as body frames; see amqp_session.cpp for the direct write of large ones.
    void output_body(std::uint16_t channel, std::string_view body);
    // Writes the direct bodies noted so far (one writev with the output around them). Every
    // path that delivers calls it before the tasks' views can end (the next call into the
    // core, or the end of the turn).
    void flush_direct();
    // Writes out_ as far as the socket takes it now (non-blocking); once all is written, out_
    // is cleared and a burst's capacity let go.
    void write_now();
    void note_write_error(int error);
    // settle() leaves the channel's consumers to be topped up once the whole input batch is
    // handled (one lease and one write for all the acks a read brought in).
    void pump_after_batch(std::uint16_t channel);
    void release_unacked(channel& ch);
    void remove_consumer(channel& ch, amqp_consumer& c, bool may_auto_delete);
    channel* find_channel(std::uint16_t number);

    boost::asio::ip::tcp::socket socket_;
    amqp_vhost& vhost_;
    broker_service& service_;
    client_state client_;
    protocol::amqp::connection_decoder decoder_;
    std::string in_;  // input buffer: [in_begin_, in_end_) arrived, not yet decoded
    std::size_t in_begin_ = 0;
    std::size_t in_end_ = 0;
    std::string out_;  // output: [out_sent_, end) is due, not yet written
    std::size_t out_sent_ = 0;
    std::size_t pending_out() const noexcept { return out_.size() - out_sent_; }
    bool socket_full_ = false;   // a write stopped short: the writer waits until writable
    bool write_failed_ = false;  // the writer closes the session
    boost::system::error_code write_error_;
    // Bodies going straight from their tasks to the socket at the next flush_direct(): each
    // goes after out_[end of the one before, out_end).
    struct direct_body {
        std::size_t out_end = 0;
        std::string_view body;
        std::uint16_t channel = 0;
    };
    std::vector<direct_body> direct_;
    std::size_t direct_bytes_ = 0;
    std::vector<std::uint16_t> pump_after_batch_;
    phase phase_ = phase::header;
    std::string mechanism_;
    std::uint32_t frame_max_ = protocol::amqp::default_frame_max;
    std::uint16_t channel_max_ = 2047;
    std::uint16_t heartbeat_s_ = 0;
    std::map<std::uint16_t, channel> channels_;
    std::vector<std::string> auto_acks_;  // no-ack deliveries made in a wake-up, to ACK
    std::vector<amqp_consumer*> to_pump_;
    bool pump_posted_ = false;
    boost::asio::steady_timer writer_wake_;
    boost::asio::steady_timer heartbeat_timer_;
    boost::asio::steady_timer released_;
    boost::asio::steady_timer confirm_wake_;
    boost::asio::steady_timer close_timer_;    // the wait for Close-Ok
    boost::asio::steady_timer unblock_timer_;  // while blocked_: the next look at admission
    bool blocked_ = false;                     // flow control: input held at a publish
    std::optional<protocol::amqp::command> held_publish_;  // that publish, run at unblock
    bool blocked_capability_ = false;  // the client announced connection.blocked
    std::int64_t last_read_us_ = 0;
    std::int64_t last_write_us_ = 0;
    bool reader_done_ = false;
    bool closing_ = false;  // close(): abort
    bool close_after_flush_ = false;
    bool ended_ = false;
    bool confirm_waiting_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace conveyor::server

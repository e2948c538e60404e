// The AMQP 0-9-1 front end (docs/amqp.md): one amqp_session per client connection, over the
// amqp_vhost they share.
//
// The session is the socket driver: it reads into its input buffer, feeds the bytes to its
// amqp_connection_fsm (the handshake, SASL, tune, channels, heartbeats: sans-IO), owns the
// timers, and runs what the machine hands it: the login check (access_control, perhaps off
// thread), and each method for an open channel, found in the method table (amqp_methods.cpp)
// and run against its amqp_channel (deliveries, consumers, QoS, confirms: sans-IO) and the
// broker core. Output goes out batched, one write per input batch, large bodies straight from
// their tasks (amqp_output.cpp). Everything runs on the core thread (THREADING.md).
#pragma once

#include <conveyor/amqp/amqp_channel.hpp>
#include <conveyor/amqp/amqp_connection_fsm.hpp>
#include <conveyor/amqp/amqp_vhost.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/client_state.hpp>
#include <conveyor/runtime/input_buffer.hpp>
#include <conveyor/runtime/session.hpp>

#include <conveyor/protocol/amqp_command.hpp>
#include <conveyor/protocol/amqp_content.hpp>
#include <conveyor/protocol/amqp_methods.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace conveyor::server {

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
    // x-single-active-consumer: `c` became its queue's active consumer.
    void consumer_activated(amqp_consumer& c) { pump(c); }

private:
    using amqp_error = protocol::amqp::amqp_error;
    using result = std::optional<amqp_error>;  // a channel or connection exception, or none
    using handler = result (amqp_session::*)(amqp_channel&, protocol::amqp::command&);
    struct method_row;

    // ---- the driver (amqp_session.cpp) ----------------------------------------------------
    boost::asio::awaitable<void> read_loop();
    boost::asio::awaitable<void> heartbeat_loop();
    boost::asio::awaitable<void> confirm_loop();
    void process_input();
    // Runs one event of the connection machine; false when the input is to wait (blocked,
    // a login being checked, the connection over).
    bool on_event(const amqp_connection_fsm::event& ev, protocol::amqp::command& cmd);
    void on_method(protocol::amqp::command& cmd);
    void on_login();
    void finish_auth(const access_control::auth_verdict& verdict);
    void on_body_too_large(const protocol::amqp::command& cmd);
    // Flow control (docs/amqp.md): true when `cmd` is a basic.publish that the admission
    // policy refuses now; it is kept (held_publish_), the connection is blocked
    // (connection.blocked to clients that announce the capability), and its input waits in
    // wait_unblocked until work is admitted again, which runs `cmd` first.
    bool hold_publish(protocol::amqp::command& cmd);
    boost::asio::awaitable<void> wait_unblocked();
    void end_session();
    void after_batch();
    void close_connection(protocol::amqp::reply_code code, std::string text,
                          protocol::amqp::method_key cause = {});
    void connection_closing();  // the machine sent Connection.Close: every channel ends
    void channel_error(amqp_channel& ch, const amqp_error& e, protocol::amqp::method_key cause);
    void end_channel(amqp_channel& ch);
    void release_unacked(amqp_channel& ch);
    amqp_channel* find_channel(std::uint16_t number);
    template <class M>
    void send(std::uint16_t channel, const M& m) {
        protocol::amqp::encode_method_frame(out_, channel, m);
    }

    // ---- output (amqp_output.cpp) ---------------------------------------------------------
    boost::asio::awaitable<void> write_loop();
    void wake_writer();
    // Appends `body` as body frames; large ones go straight from the task at flush_direct.
    void output_body(std::uint16_t channel, std::string_view body);
    // Writes the direct bodies noted so far (one writev with the output around them). Every
    // path that delivers calls it before the tasks' views can end (the next call into the
    // core, or the end of the turn).
    void flush_direct();
    void write_direct();
    void merge_direct();
    // Writes out_ as far as the socket takes it now (non-blocking); once all is written, out_
    // is cleared and a burst's capacity let go.
    void write_now();
    void note_write_error(int error);
    void note_written();
    std::size_t pending_out() const noexcept { return out_.size() - out_sent_; }

    // ---- the method table and exchange / queue methods (amqp_methods.cpp) -----------------
    static const method_row* find_method(protocol::amqp::method_key key);
    result dispatch(amqp_channel& ch, protocol::amqp::command& cmd);
    result exchange_declare(amqp_channel& ch, protocol::amqp::command& cmd);
    result exchange_delete(amqp_channel& ch, protocol::amqp::command& cmd);
    result exchange_bind(amqp_channel& ch, protocol::amqp::command& cmd);
    result exchange_unbind(amqp_channel& ch, protocol::amqp::command& cmd);
    result queue_declare(amqp_channel& ch, protocol::amqp::command& cmd);
    result queue_bind(amqp_channel& ch, protocol::amqp::command& cmd);
    result queue_unbind(amqp_channel& ch, protocol::amqp::command& cmd);
    result queue_purge(amqp_channel& ch, protocol::amqp::command& cmd);
    result queue_delete(amqp_channel& ch, protocol::amqp::command& cmd);
    result confirm_select(amqp_channel& ch, protocol::amqp::command& cmd);
    result tx_method(amqp_channel& ch, protocol::amqp::command& cmd);
    // A durable binding change: bind / unbind with the file written before the reply.
    result change_binding(const amqp_binding& b, bool bind);

    // ---- publish (amqp_publish.cpp) -------------------------------------------------------
    result publish(amqp_channel& ch, protocol::amqp::command& cmd);
    result enqueue_routed(amqp_channel& ch, const protocol::amqp::command& cmd,
                          const std::vector<std::string>& queues);
    void drop_head(const std::string& queue, std::int64_t max_length, core::instant now);
    void confirm(amqp_channel& ch, bool ack);
    void return_message(amqp_channel& ch, const protocol::amqp::command& cmd,
                        protocol::amqp::reply_code code, std::string_view text);

    // ---- consume, get, settle, qos (amqp_consume.cpp) -------------------------------------
    result basic_consume(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_cancel(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_get(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_ack(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_nack(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_reject(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_qos(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_recover(amqp_channel& ch, protocol::amqp::command& cmd);
    result basic_recover_async(amqp_channel& ch, protocol::amqp::command& cmd);
    result settle(amqp_channel& ch, std::uint64_t tag, bool multiple, std::optional<bool> requeue);
    void recover(amqp_channel& ch);
    void pump(amqp_consumer& c);
    void pump_channel(amqp_channel& ch);
    void pump_all();
    void ack_no_ack_deliveries(core::instant now);
    void deliver(amqp_channel& ch, amqp_consumer* c, const core::leased_task& t,
                 std::optional<std::uint32_t> get_count);
    // settle() leaves the channel's consumers to be topped up once the whole input batch is
    // handled (one lease and one write for all the acks a read brought in).
    void pump_after_batch(std::uint16_t channel);
    void remove_consumer(amqp_channel& ch, amqp_consumer& c, bool may_auto_delete);

    // ---- permissions (amqp_access.cpp; the mapping onto verbs is at its top) -------------
    // The queue for a method naming it, checked for existence, exclusivity and `need`.
    protocol::amqp::amqp_result<amqp_queue*> usable_queue(std::string_view name,
                                                          std::optional<auth::verb> need);
    result check_verb(std::string_view queue, auth::verb v);
    result check_exchange(std::string_view exchange, auth::verb v);
    // ACCESS_REFUSED unless one of `verbs` is granted on `name` (a queue or an exchange, as
    // `kind` says); `needs` words the verbs for the message.
    result check_access(std::string_view kind, std::string_view name,
                        std::initializer_list<auth::verb> verbs, std::string_view needs);
    // The exchange side of exchange.* and queue.bind/unbind; nullopt for other methods.
    result exchange_access(const protocol::amqp::method& m);
    result publish_access(const protocol::amqp::basic_publish& m);
    // Closes the connection with 320 CONNECTION_FORCED when its user is no longer in the
    // users file (true then).
    bool forced_out();

    boost::asio::ip::tcp::socket socket_;
    amqp_vhost& vhost_;
    broker_service& service_;
    client_state client_;
    input_buffer in_;
    std::string out_;  // output: [out_sent_, end) is due, not yet written
    std::size_t out_sent_ = 0;
    amqp_connection_fsm fsm_;    // appends to out_
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
    std::map<std::uint16_t, amqp_channel> channels_;
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
    bool reader_done_ = false;
    bool closing_ = false;  // close(): abort
    bool close_after_flush_ = false;
    bool ended_ = false;
    bool confirm_waiting_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace conveyor::server

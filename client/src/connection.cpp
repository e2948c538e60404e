// The thin Asio layer under connection.hpp: a connect handshake, one coroutine that writes
// what request_pipeline has queued, one that reads and feeds replies back to it. Which reply
// belongs to which caller is decided in request_pipeline.hpp, not here.
//
// The stream is a std::variant of a TCP socket and a TLS stream over one, chosen at connect;
// the loops are templates instantiated for each and spawned through one std::visit, so no
// request pays for the choice (no virtual call, no visit per read or write).
#include <conveyor/client/connection.hpp>
#include <conveyor/client/request_pipeline.hpp>

#include "tls_setup.hpp"

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <variant>

namespace conveyor::client {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using tls_stream = ssl::stream<tcp::socket>;
using stream_type = std::variant<tcp::socket, tls_stream>;

namespace {

using reply_handler = asio::any_completion_handler<void(std::exception_ptr, reply)>;

// Replies are read in chunks of this size; a larger reply spans several reads.
constexpr std::size_t read_chunk = 64 * 1024;

// One call waiting for its reply, shared by the pipeline and the call's cancellation slot.
struct pending_call {
    // Constructed in place: Boost 1.81's any_completion_handler move-assignment recurses
    // forever (it copies from an lvalue through its converting constructor).
    pending_call(asio::any_io_executor ex, reply_handler h)
        : executor(std::move(ex)), handler(std::move(h)) {}

    asio::any_io_executor executor;  // the connection's
    reply_handler handler;
    asio::cancellation_slot slot;

    // Resumes the caller once, on its own executor (never inline in the read loop); an
    // outcome for a call that was already completed (abandoned) is dropped.
    void complete(std::exception_ptr error, reply value) {
        if (!handler) return;
        if (slot.is_connected()) slot.clear();
        // Two steps because Boost 1.81 cannot post() a type-erased handler directly: post to
        // the connection's executor (leaving the read loop), then dispatch to the caller's.
        asio::post(executor, [h = std::move(handler), error, value = std::move(value)]() mutable {
            asio::dispatch(asio::append(std::move(h), error, std::move(value)));
        });
    }

    // The caller's coroutine was cancelled: it resumes now; the reply, when it comes, is
    // dropped. Runs inside the slot's own handler, which therefore must not be cleared here.
    void abandon() {
        slot = {};
        complete(std::make_exception_ptr(error(asio::error::operation_aborted, "call cancelled")),
                 {});
    }
};

using call_ptr = std::shared_ptr<pending_call>;

}  // namespace

namespace detail {

struct connection_state {
    using executor_type = connection::executor_type;

    // `tls`: the context of a TLS connection, null for plaintext.
    connection_state(executor_type ex, server_url u, const connect_options& o,
                     std::shared_ptr<ssl::context> tls)
        : executor(ex),
          url(std::move(u)),
          options(o),
          tls_settings(o.tls ? *o.tls : tls_options{}),
          tls_context(std::move(tls)),
          stream(make_stream(ex, tls_context.get())),
          resolver(ex),
          connect_timer(ex),
          write_signal(ex),
          pipeline(o.reply_limits) {
        options.tls = &tls_settings;
    }

    executor_type executor;
    server_url url;
    connect_options options;   // options.tls points to tls_settings
    tls_options tls_settings;  // a copy of what the caller's options.tls pointed to
    std::shared_ptr<ssl::context> tls_context;  // outlives the stream that uses it
    stream_type stream;
    tcp::resolver resolver;
    asio::steady_timer connect_timer;
    // Never expires: the write loop waits on it while nothing is queued, and a new request
    // cancels it to wake the loop.
    asio::steady_timer write_signal;
    request_pipeline<call_ptr> pipeline;
    std::string write_buffer;  // the batch being written
    connection_stats stats;
    bool handshake_done = false;
    bool tls_started = false;  // connect's failures from here on are explained as TLS ones
    bool connect_timed_out = false;
    bool open = false;
    std::exception_ptr close_reason;

    static stream_type make_stream(const executor_type& ex, ssl::context* tls) {
        if (tls) return stream_type(std::in_place_type<tls_stream>, ex, *tls);
        return stream_type(std::in_place_type<tcp::socket>, ex);
    }

    // The TCP socket, under TLS or not.
    tcp::socket::lowest_layer_type& socket() {
        return std::visit(
            [](auto& s) -> tcp::socket::lowest_layer_type& { return s.lowest_layer(); }, stream);
    }

    // The name the server's certificate must carry.
    const std::string& tls_name() const {
        return tls_settings.server_name.empty() ? url.host : tls_settings.server_name;
    }

    std::string where() const { return to_display_string(url); }

    void start(call_ptr call, const command_args& args) {
        if (!open) return call->complete(close_reason, {});
        pipeline.push(args, std::move(call));
        write_signal.cancel();
    }

    // Ends the connection for good: every call still waiting fails with `reason`.
    void shut_down(std::exception_ptr reason) {
        if (!open) return;
        open = false;
        close_reason = reason;
        // No TLS close_notify: the server treats a truncated TLS stream as an ordinary close.
        error_code ignored;
        socket().shutdown(tcp::socket::shutdown_both, ignored);
        socket().close(ignored);
        write_signal.cancel();
        pipeline.drain([&](call_ptr call) {
            if (call) call->complete(reason, {});
        });
    }

    std::exception_ptr io_error(error_code ec, const char* doing) const {
        std::string what =
            ec == asio::error::eof || ec == ssl::error::stream_truncated
                ? "connection to " + where() + " closed by the server"
                : "connection to " + where() + " failed while " + doing + ": " + ec.message();
        return std::make_exception_ptr(error(ec, what));
    }
};

}  // namespace detail

namespace {

using state_ptr = std::shared_ptr<detail::connection_state>;

template <class Stream>
awaitable<void> write_loop(state_ptr self, Stream& stream) {
    for (;;) {
        while (!self->pipeline.has_unsent()) {
            if (!self->open) co_return;
            self->write_signal.expires_at(asio::steady_timer::time_point::max());
            co_await self->write_signal.async_wait(asio::as_tuple(asio::use_awaitable));
            if (!self->open) co_return;
        }
        std::size_t requests = self->pipeline.take_batch(self->write_buffer);
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(self->write_buffer),
                                                  asio::as_tuple(asio::use_awaitable));
        if (!self->open) co_return;
        if (ec) {
            self->shut_down(self->io_error(ec, "writing"));
            co_return;
        }
        self->stats.requests += requests;
        ++self->stats.writes;
    }
}

template <class Stream>
awaitable<void> read_loop(state_ptr self, Stream& stream) {
    std::vector<char> buffer(read_chunk);
    for (;;) {
        auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer),
                                                       asio::as_tuple(asio::use_awaitable));
        if (!self->open) co_return;
        if (ec) {
            self->shut_down(self->io_error(ec, "reading"));
            co_return;
        }
        bool ok = self->pipeline.feed({buffer.data(), n}, [&](call_ptr call, reply r) {
            ++self->stats.replies;
            if (call) call->complete(nullptr, std::move(r));
        });
        if (!ok) {
            // An error reply nobody asked for is the server's reason for closing: callers get
            // it as a server_error (DENIED, ...), which says more than a protocol error.
            const std::string& what = self->pipeline.error_message();
            self->shut_down(
                self->pipeline.unsolicited_error()
                    ? std::make_exception_ptr(server_error(what))
                    : std::make_exception_ptr(error(make_error_code(errc::protocol_error),
                                                    what + " (from " + self->where() + ")")));
            co_return;
        }
    }
}

// AUTH (or PING without a password) before the loops start, so that connect() fails on a
// server that refuses the client on sight (protected mode's -DENIED, no free client slot, a
// client certificate refused after a TLS 1.3 handshake) or refuses the credentials, rather
// than the first call. The pipeline carries it like any request, with no caller.
template <class Stream>
awaitable<void> confirm(state_ptr self, Stream& stream) {
    self->pipeline.push(
        self->url.password ? request::auth(self->url.user, *self->url.password) : request::ping(),
        nullptr);
    self->pipeline.take_batch(self->write_buffer);
    co_await asio::async_write(stream, asio::buffer(self->write_buffer), asio::use_awaitable);
    std::optional<reply> answer;
    std::array<char, 4096> buffer;
    while (!answer) {
        std::size_t n = co_await stream.async_read_some(asio::buffer(buffer), asio::use_awaitable);
        bool ok = self->pipeline.feed({buffer.data(), n},
                                      [&](call_ptr, reply r) { answer = std::move(r); });
        if (!ok) throw_error(errc::protocol_error, self->pipeline.error_message());
    }
    parse::simple(*answer);  // a refused AUTH throws its server_error (WRONGPASS, ERR ...)
}

awaitable<void> handshake(state_ptr self) {
    auto endpoints = co_await self->resolver.async_resolve(
        self->url.host, std::to_string(self->url.port), asio::use_awaitable);
    co_await asio::async_connect(self->socket(), endpoints, asio::use_awaitable);
    self->socket().set_option(tcp::no_delay(true));
    if (auto* tls = std::get_if<tls_stream>(&self->stream)) {
        self->tls_started = true;
        detail::prepare_tls_connection(tls->native_handle(), self->tls_name(),
                                       self->tls_settings.verify);
        co_await tls->async_handshake(ssl::stream_base::client, asio::use_awaitable);
        co_await confirm(self, *tls);
    } else {
        co_await confirm(self, std::get<tcp::socket>(self->stream));
    }
}

// Closes the socket when the handshake overruns connect_timeout, which ends the pending
// resolve/connect/read with an error that connect() reports as timed_out.
void arm_connect_timer(const state_ptr& self) {
    self->connect_timer.expires_after(self->options.connect_timeout);
    self->connect_timer.async_wait([weak = std::weak_ptr(self)](error_code ec) {
        auto s = weak.lock();
        if (ec || !s || s->handshake_done) return;
        s->connect_timed_out = true;
        s->resolver.cancel();
        error_code ignored;
        s->socket().close(ignored);
    });
}

// The exception connect() throws for `e`: TLS failures explained and given errc::tls_error
// (a closed connection mid-handshake keeps its I/O code: it may be a server restarting).
error connect_failure(detail::connection_state& self, const boost::system::system_error& e) {
    const std::string prefix = "cannot connect to " + self.where() + ": ";
    if (e.code() == errc::tls_error) return error(e.code(), prefix + e.what());
    if (!self.tls_started) return error(e.code(), prefix + e.code().message());
    auto* tls = std::get_if<tls_stream>(&self.stream);
    std::string why = detail::explain_tls_failure(tls ? tls->native_handle() : nullptr, e.code(),
                                                  self.tls_name(), self.tls_settings);
    if (detail::is_tls_failure(e.code()))
        return error(make_error_code(errc::tls_error), prefix + why);
    return error(e.code(), prefix + why);
}

// A new connection's state, with its TLS context when it uses TLS (whose setup failures are
// said as connect failures).
state_ptr make_state(connection::executor_type ex, server_url url, const connect_options& o) {
    std::shared_ptr<ssl::context> tls;
    const tls_options defaults;
    const tls_options& settings = o.tls ? *o.tls : defaults;
    if (uses_tls(url, settings)) {
        try {
            tls = detail::make_tls_context(settings);
        } catch (const error& e) {
            throw error(e.code(), "cannot connect to " + to_display_string(url) + ": " + e.what());
        }
    }
    return std::make_shared<detail::connection_state>(ex, std::move(url), o, std::move(tls));
}

}  // namespace

namespace detail {
// What connect() was given, owned: the TLS settings copied from where options.tls pointed.
struct connect_request {
    connect_request(connection::executor_type ex, server_url u, const connect_options& o)
        : executor(std::move(ex)),
          url(std::move(u)),
          options(o),
          tls(o.tls ? *o.tls : tls_options{}) {
        options.tls = &tls;
    }
    connect_request(const connect_request&) = delete;
    connect_request& operator=(const connect_request&) = delete;

    connection::executor_type executor;  // empty: the awaiting coroutine's
    server_url url;
    connect_options options;
    tls_options tls;
};
}  // namespace detail

awaitable<connection> connection::connect(executor_type ex, server_url url,
                                          connect_options options) {
    return open(std::make_unique<detail::connect_request>(std::move(ex), std::move(url), options));
}

awaitable<connection> connection::connect(server_url url, connect_options options) {
    return open(
        std::make_unique<detail::connect_request>(executor_type{}, std::move(url), options));
}

awaitable<connection> connection::open(std::unique_ptr<detail::connect_request> request) {
    executor_type ex = request->executor;
    if (!ex) ex = co_await asio::this_coro::executor;
    const connect_options& options = request->options;
    auto self = make_state(ex, std::move(request->url), options);
    arm_connect_timer(self);
    try {
        co_await handshake(self);
    } catch (const server_error&) {
        throw;
    } catch (const boost::system::system_error& e) {
        if (self->connect_timed_out)
            throw error(asio::error::timed_out,
                        "connecting to " + self->where() + " timed out after " +
                            std::to_string(options.connect_timeout.count()) + " ms");
        throw connect_failure(*self, e);
    }
    self->handshake_done = true;
    self->connect_timer.cancel();
    self->open = true;
    // Both loops end when the connection is shut down. An unexpected exception in either
    // shuts the connection down with it, so every waiting caller hears about it.
    auto on_end = [self](std::exception_ptr e) {
        if (e) self->shut_down(e);
    };
    std::visit(
        [&](auto& stream) {
            asio::co_spawn(ex, write_loop(self, stream), on_end);
            asio::co_spawn(ex, read_loop(self, stream), on_end);
        },
        self->stream);
    co_return connection(std::move(self));
}

connection& connection::operator=(connection&& other) noexcept {
    if (this != &other) {
        close();
        state_ = std::move(other.state_);
    }
    return *this;
}

connection::~connection() {
    close();
}

void connection::close() {
    if (!state_) return;
    auto self = state_;
    asio::dispatch(self->executor, [self] {
        self->shut_down(std::make_exception_ptr(
            error(make_error_code(errc::closed),
                  "connection to " + self->where() + " closed by close()")));
    });
}

bool connection::is_open() const noexcept {
    return state_ && state_->open;
}
connection_stats connection::stats() const noexcept {
    return state_ ? state_->stats : connection_stats{};
}
const server_url& connection::url() const noexcept {
    static const server_url none;
    return state_ ? state_->url : none;
}
connection::executor_type connection::get_executor() const noexcept {
    return state_ ? state_->executor : executor_type{};
}

awaitable<reply> connection::send(state_ptr self, command_args args) {
    if (!self) throw_error(errc::closed, "connection is empty (moved from)");
    auto initiate = [self, args = std::move(args)](auto handler) mutable {
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto call = std::make_shared<pending_call>(self->executor, std::move(handler));
        if (slot.is_connected()) {
            call->slot = slot;
            slot.assign([weak = std::weak_ptr(call)](asio::cancellation_type) {
                if (auto c = weak.lock()) c->abandon();
            });
        }
        asio::dispatch(self->executor,
                       [self, call, args = std::move(args)] { self->start(call, args); });
    };
    co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                            void(std::exception_ptr, reply)>(initiate,
                                                                             asio::use_awaitable);
}

namespace {
awaitable<reply> rethrow(std::exception_ptr e) {
    std::rethrow_exception(e);
    co_return reply{};
}
}  // namespace

template <class Build>
awaitable<reply> connection::send_built(Build build) const {
    try {
        return send(state_, build());
    } catch (...) {
        return rethrow(std::current_exception());
    }
}

awaitable<reply> connection::command(command_args args) {
    return send(state_, std::move(args));
}

awaitable<std::string> connection::enqueue(std::string_view queue, std::string_view payload,
                                           const enqueue_options& options) {
    return call(send_built([&] { return request::enqueue(queue, payload, options); }), &parse::id);
}

awaitable<std::vector<leased_task>> connection::lease(std::vector<std::string> queues,
                                                      const lease_options& options) {
    return call(send_built([&] { return request::lease(queues, options); }), &parse::leased_tasks);
}

awaitable<std::vector<leased_task>> connection::lease(std::string_view queue,
                                                      const lease_options& options) {
    std::string queues[] = {std::string(queue)};
    return call(send_built([&] { return request::lease(queues, options); }), &parse::leased_tasks);
}

awaitable<lease_outcome> connection::ack(std::string_view lease,
                                         std::optional<std::string_view> result) {
    return call(send_built([&] { return request::ack(lease, result); }), &parse::lease_reply);
}

awaitable<fail_outcome> connection::fail(std::string_view lease, std::string_view error,
                                         const fail_options& options) {
    return call(send_built([&] { return request::fail(lease, error, options); }),
                &parse::fail_reply);
}

awaitable<lease_outcome> connection::release(std::string_view lease,
                                             std::optional<std::int64_t> delay_ms) {
    return call(send_built([&] { return request::release(lease, delay_ms); }), &parse::lease_reply);
}

awaitable<lease_outcome> connection::extend(std::string_view lease, std::int64_t ms) {
    return call(send_built([&] { return request::extend(lease, ms); }), &parse::lease_reply);
}

awaitable<bool> connection::cancel(std::string_view id) {
    return call(send_built([&] { return request::cancel(id); }), &parse::flag);
}

awaitable<std::optional<task_info>> connection::task(std::string_view id) {
    return call(send_built([&] { return request::task(id); }), &parse::task);
}

awaitable<task_result> connection::result(std::string_view id,
                                          std::optional<std::int64_t> wait_ms) {
    return call(send_built([&] { return request::result(id, wait_ms); }), &parse::result);
}

awaitable<std::int64_t> connection::qlen(std::string_view queue) {
    return call(send_built([&] { return request::qlen(queue); }), &parse::integer);
}

awaitable<std::vector<std::string>> connection::queues() {
    return call(send_built([&] { return request::queues(); }), &parse::strings);
}

awaitable<std::vector<std::string>> connection::dead(std::string_view queue,
                                                     std::optional<std::int64_t> count) {
    return call(send_built([&] { return request::dead(queue, count); }), &parse::strings);
}

awaitable<bool> connection::requeue(std::string_view id) {
    return call(send_built([&] { return request::requeue(id); }), &parse::flag);
}

awaitable<std::int64_t> connection::qpurge(std::string_view queue) {
    return call(send_built([&] { return request::qpurge(queue); }), &parse::integer);
}

awaitable<std::string> connection::ping() {
    return call(send_built([&] { return request::ping(); }), &parse::simple);
}

}  // namespace conveyor::client

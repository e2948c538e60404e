// One pipelined connection to a Conveyor broker, as a C++20 coroutine API on Boost.Asio.
//
//   auto conn = co_await connection::connect(ex, parse_url("redis://:secret@host:6380"));
//   tls_options tls{.ca_file = "ca.crt"};
//   auto secure = co_await connection::connect(ex, parse_url("rediss://broker:6390"),
//                                              {.tls = &tls});
//   auto id = co_await conn.enqueue("emails", payload, {.name = "send", .retries = 5});
//   auto r = co_await conn.result(id, 30'000);
//
// Errors: see error.hpp. Every call throws boost::system::system_error on failure (I/O errors
// with Asio's codes, a closed connection with errc::closed, an error reply that is not a
// documented outcome as server_error); documented outcomes (lease lost, cancelled, no result
// yet) are returned as values.
//
// Pipelining: any number of coroutines may call at once. Requests queue up and go out
// together in one write (several ACKs from several workers in one write); replies come back
// in request order and wake each caller. A blocking call (LEASE BLOCK, RESULT WAIT) holds its
// place in that order, so calls behind it on the same connection wait for it, as in Redis:
// give long blocking calls a connection of their own.
//
// Threading: a connection lives on the executor given to connect(). Calls may come from any
// coroutine; the request is handed to that executor (dispatch), so with a multi-threaded
// io_context pass a strand. close(), is_open() and stats() must run on that executor.
//
// Cancellation: a call whose awaiting coroutine is cancelled (for example the loser of an
// awaitable_operators `||`) completes at once with operation_aborted; its request may already
// be on the wire, in which case the server still executes it and the reply is dropped.
//
// Lifetime: close() (or the destructor of the last handle) fails every outstanding call with
// errc::closed and closes the socket; a lost connection fails them with the I/O error. There
// is no automatic reconnect: make a new connection.
#pragma once

#include <conveyor/client/commands.hpp>
#include <conveyor/client/error.hpp>
#include <conveyor/client/tls.hpp>
#include <conveyor/client/types.hpp>
#include <conveyor/client/url.hpp>
#include <conveyor/protocol/resp_reply_decoder.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace conveyor::client {

template <class T>
using awaitable = boost::asio::awaitable<T>;

namespace detail {
struct connection_state;  // connection.cpp
struct connect_request;   // connection.cpp
}  // namespace detail

struct connect_options {
    // Bounds resolve + TCP connect + TLS handshake + AUTH (or PING) together; errc is
    // asio::error::timed_out.
    std::chrono::milliseconds connect_timeout{5000};
    // TLS settings (tls.hpp), read during the call to connect() only; null: the defaults (TLS
    // for rediss:// URLs, verified against the system's CA store). A pointer rather than a
    // member so that connect_options stays trivially copyable: g++ 12 corrupts a temporary
    // of a type with std::string members passed inside a co_await expression, as in
    // `co_await connect(url, {.connect_timeout = 1s})`.
    const tls_options* tls = nullptr;
    // What a misbehaving server can make the client hold (see resp_reply_decoder.hpp).
    protocol::resp_reply_limits reply_limits{};
};

// Counters of one connection, for tests and dashboards.
struct connection_stats {
    std::uint64_t requests = 0;  // requests written
    std::uint64_t writes = 0;    // socket writes they took (requests / writes = coalescing)
    std::uint64_t replies = 0;   // replies received
};

class connection {
public:
    using executor_type = boost::asio::any_io_executor;

    // Resolves, connects, over TLS does the handshake, and, when the URL has a password, sends
    // AUTH [<user>] <password> (a refused AUTH throws its server_error, e.g. WRONGPASS), else
    // PING. Either way a server that refuses the client on sight fails connect() with its
    // server_error, not the first call: protected mode's -DENIED, `-ERR max number of clients
    // reached`, and a client certificate refused after a TLS 1.3 handshake (refusal.hpp
    // classifies such replies). A TLS failure (a file that cannot be used, a failed handshake or
    // verification) throws errc::tls_error, its message naming the server and the reason
    // ("certificate verify failed: ...").
    //
    // Cost: the stream (TCP or TLS over TCP) is chosen here, once; the read and write loops
    // are instantiated per stream type, so a plaintext connection does exactly what it did
    // before TLS existed, and a TLS one pays only for TLS.
    static awaitable<connection> connect(executor_type ex, server_url url,
                                         connect_options options = {});
    // The same, on the calling coroutine's executor.
    static awaitable<connection> connect(server_url url, connect_options options = {});

    connection(connection&&) noexcept = default;
    connection& operator=(connection&& other) noexcept;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    ~connection();  // close()

    // Any command. Returns the reply as decoded, error replies included (they do not throw
    // here: parse::throw_if_error() does that); throws only when the connection fails.
    awaitable<reply> command(command_args args);
    // The same with the arguments listed: command("ECHO", "hi"). (A braced list inside
    // co_await, command({"ECHO", "hi"}), does not compile with g++ 12.)
    template <class... Args>
    requires(std::is_convertible_v<const Args&, std::string_view>&&...) awaitable<reply> command(
        std::string_view name, const Args&... args) {
        return command(command_args{std::string(name), std::string(std::string_view(args))...});
    }

    // ENQUEUE: the task id (the given ID when the broker already knows it).
    awaitable<std::string> enqueue(std::string_view queue, std::string_view payload,
                                   const enqueue_options& options = {});
    // LEASE ... FROM <queues>: up to options.count tasks, none when nothing was ready in time.
    // Earlier queues are served first.
    awaitable<std::vector<leased_task>> lease(std::vector<std::string> queues,
                                              const lease_options& options = {});
    // The same from one queue. (A braced list of queues inside co_await does not compile with
    // g++ 12; name the vector first.)
    awaitable<std::vector<leased_task>> lease(std::string_view queue,
                                              const lease_options& options = {});
    // ACK: ok or lease_lost.
    awaitable<lease_outcome> ack(std::string_view lease,
                                 std::optional<std::string_view> result = {});
    // FAIL: retry, dead or lease_lost.
    awaitable<fail_outcome> fail(std::string_view lease, std::string_view error,
                                 const fail_options& options = {});
    // RELEASE: ok or lease_lost.
    awaitable<lease_outcome> release(std::string_view lease,
                                     std::optional<std::int64_t> delay_ms = {});
    // EXTEND: ok, lease_lost or cancelled.
    awaitable<lease_outcome> extend(std::string_view lease, std::int64_t ms);
    // CANCEL: true when the task was queued, delayed or leased and is now cancelled.
    awaitable<bool> cancel(std::string_view id);
    // TASK: nullopt when the id is unknown.
    awaitable<std::optional<task_info>> task(std::string_view id);
    // RESULT [WAIT <ms>] (0 waits forever).
    awaitable<task_result> result(std::string_view id, std::optional<std::int64_t> wait_ms = {});
    awaitable<std::int64_t> qlen(std::string_view queue);
    awaitable<std::vector<std::string>> queues();
    // DEAD: ids of dead tasks, oldest first.
    awaitable<std::vector<std::string>> dead(std::string_view queue,
                                             std::optional<std::int64_t> count = {});
    // REQUEUE: true when a dead task went back to its queue.
    awaitable<bool> requeue(std::string_view id);
    // QPURGE: ready tasks removed.
    awaitable<std::int64_t> qpurge(std::string_view queue);
    // PING: returns "PONG".
    awaitable<std::string> ping();

    // Fails every outstanding call with errc::closed and closes the socket. Idempotent.
    void close();
    bool is_open() const noexcept;
    connection_stats stats() const noexcept;
    const server_url& url() const noexcept;
    executor_type get_executor() const noexcept;

private:
    using state_ptr = std::shared_ptr<detail::connection_state>;
    explicit connection(state_ptr state) : state_(std::move(state)) {}

    // The coroutine behind both connect()s, which are plain functions that copy what the
    // caller's options point to before they return.
    static awaitable<connection> open(std::unique_ptr<detail::connect_request> request);

    // The coroutines behind every call take their arguments by value, so a call's strings
    // are copied before the caller's views can dangle.
    static awaitable<reply> send(state_ptr state, command_args args);
    // send(build()), except that an exception from build() (options that cannot be sent) is
    // thrown when the call is awaited, like every other failure, not when it is made.
    template <class Build>
    awaitable<reply> send_built(Build build) const;  // connection.cpp

    template <class Parser>
    static awaitable<std::invoke_result_t<Parser, const reply&>> call(awaitable<reply> pending,
                                                                      Parser parse) {
        reply r = co_await std::move(pending);
        co_return parse(r);
    }

    state_ptr state_;
};

}  // namespace conveyor::client

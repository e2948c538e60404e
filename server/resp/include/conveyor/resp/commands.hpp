// The RESP command table: one declarative spec per command (name, arity, handler), and the
// context a handler gets. Handlers are tiny `cmd_<verb>` functions carrying their syntax as
// a comment; they parse arguments, call the core, and write the reply. They never touch the
// socket: a handler that must wait asks the session to block (context::block).
#pragma once

#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/client_state.hpp>

#include <conveyor/auth/permissions.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace conveyor::server {

// The end of a command that waited for work off the core thread (AUTH's password check):
// writes the reply and updates the connection.
using deferred_reply = std::function<void(protocol::resp_writer&, client_state&)>;

// A RESP session as its commands see it: a client that may wait in the core, and finish a
// command whose work was done off the core thread (broker_service::complete_deferred).
class resp_waiter : public waiting_client {
public:
    virtual void on_deferred(const deferred_reply& finish) = 0;
};

// What the session sends when a blocked command's wait ends without being served.
enum class timeout_reply : std::uint8_t { empty_array, null_array, null_bulk };

struct block_request {
    core::waiter_id waiter = 0;
    std::optional<std::chrono::steady_clock::time_point> deadline;  // none: wait forever
    timeout_reply on_timeout = timeout_reply::null_bulk;
};

struct command_context {
    std::span<const std::string> args;  // args[0] is the command name as sent
    protocol::resp_writer& out;
    broker_service& service;
    client_state& client;
    resp_waiter& waiter_target;  // the session, if the command blocks
    core::instant now;
    std::optional<block_request> block;  // set by a handler that waits

    core::broker& core() { return service.core(); }
    // Registers a waiter for this session; pass its id to the core as `block_as`. If the core
    // serves the request at once, call cancel_block() (nothing to wait for).
    core::waiter_id start_block(std::optional<std::int64_t> timeout_ms, timeout_reply on_timeout);
    void cancel_block();
};

using command_handler = void (*)(command_context&);

// What a command does to the state, for admission while the log's disk is full (Redis's
// `write` and `denyoom` flags play this part): `adds` is refused then, `changes` goes ahead
// while the space reserved for finishing tasks lasts, `reads` always runs.
enum class command_effect : std::uint8_t { reads, changes, adds };

// Where a command names the queues its permission is checked on (docs/users.md): `none` for
// connection commands that need no verb, `every` for commands whose reply may cover any queue
// (the verb must be granted on `*`), `task`/`lease` for commands given a task id or a lease
// token (checked on that task's queue; an unknown task is let through, the command says so,
// and a task in a queue the user has no verb on is answered exactly as an unknown one).
enum class queue_source : std::uint8_t {
    none,
    every,
    first,         // args[1]
    all,           // args[1..]
    all_but_last,  // args[1..n-2] (BLPOP <queue>... <timeout>)
    after_from,    // the arguments after FROM (LEASE)
    task,          // args[1] is a task id
    lease,         // args[1] is a lease token, <task id>#<delivery>
};

struct command_spec {
    std::string_view name;  // lower case
    int arity;              // Redis convention: n = exactly n args (incl. name), -n = at least n
    command_handler handler;
    std::string_view summary;  // for COMMAND DOCS
    std::string_view group;
    command_effect effect = command_effect::reads;
    queue_source queues = queue_source::none;
};

// Looks a command up by name, case-insensitively. nullptr when unknown.
const command_spec* find_command(std::string_view name);
std::span<const command_spec> all_commands();

// Executes one request: arity check, dispatch, Redis-worded errors for unknown commands.
void execute_command(command_context& ctx);
// For a command blocked since before the users file was reloaded (its request in ctx.args):
// checks it again under the client's current rights. True when it may go on waiting;
// otherwise its reply is written (-NOAUTH for a removed user, -NOPERM, or the reply to an
// unknown id for a task the user may no longer see) and the caller ends the wait.
bool recheck_blocked_command(command_context& ctx);

// ---- shared argument parsing (Redis wording for errors) ---------------------------------
bool iequals(std::string_view a, std::string_view b) noexcept;
std::optional<std::int64_t> parse_int(std::string_view s) noexcept;
// Parses a non-negative integer argument; on failure writes the error reply and returns
// nullopt.
std::optional<std::int64_t> arg_non_negative(command_context& ctx, std::string_view s,
                                             std::string_view what);
// Parses a duration argument in ms: a non-negative integer up to core::max_duration_ms
// (`ERR <what> is out of range (max 3153600000000 ms)` past it). On failure writes the error
// reply and returns nullopt.
std::optional<std::int64_t> arg_duration(command_context& ctx, std::string_view s,
                                         std::string_view what);
// ERR when `bytes` (a payload, element or result; `what` names it) is over --max-payload.
bool check_payload_size(command_context& ctx, std::string_view bytes, std::string_view what);
// ERR when the queue name breaks the rules of queue_name.hpp (1-255 bytes, no control bytes).
bool check_queue_name(command_context& ctx, std::string_view queue);
void reply_syntax_error(command_context& ctx);
void reply_wrong_arity(command_context& ctx);

// ---- reply shapes shared by direct replies and wake-ups of blocked clients -------------
void write_leased_tasks(protocol::resp_writer& out, std::span<const core::leased_task> tasks);
void write_result(protocol::resp_writer& out, const core::task_view& task);
void write_popped(protocol::resp_writer& out, std::string_view queue, std::string_view payload);
void write_timeout(protocol::resp_writer& out, timeout_reply kind);

// ---- handler groups (registered in commands.cpp) -----------------------------------------
void cmd_ping(command_context&);
void cmd_echo(command_context&);
void cmd_quit(command_context&);
void cmd_hello(command_context&);
void cmd_auth(command_context&);
void cmd_select(command_context&);
void cmd_client(command_context&);
void cmd_command(command_context&);
void cmd_config(command_context&);
void cmd_info(command_context&);
void cmd_time(command_context&);
void cmd_debug(command_context&);

void cmd_enqueue(command_context&);
void cmd_lease(command_context&);
void cmd_ack(command_context&);
void cmd_fail(command_context&);
void cmd_release(command_context&);
void cmd_extend(command_context&);
void cmd_cancel(command_context&);
void cmd_task(command_context&);
void cmd_result(command_context&);
void cmd_qlen(command_context&);
void cmd_queues(command_context&);
void cmd_dead(command_context&);
void cmd_requeue(command_context&);
void cmd_qpurge(command_context&);

void cmd_lpush(command_context&);
void cmd_rpush(command_context&);
void cmd_lpop(command_context&);
void cmd_rpop(command_context&);
void cmd_blpop(command_context&);
void cmd_brpop(command_context&);
void cmd_del(command_context&);

}  // namespace conveyor::server

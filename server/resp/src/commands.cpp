#include <conveyor/resp/commands.hpp>

#include <conveyor/runtime/queue_name.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <unordered_map>

namespace conveyor::server {
namespace {

// clang-format off
constexpr command_spec command_table[] = {
    // connection
    {"ping",     -1, cmd_ping,    "Returns PONG, or the message given.", "connection", command_effect::reads, queue_source::none},
    {"echo",      2, cmd_echo,    "Returns the message given.", "connection", command_effect::reads, queue_source::none},
    {"quit",     -1, cmd_quit,    "Closes the connection after replying OK.", "connection", command_effect::reads, queue_source::none},
    {"hello",    -1, cmd_hello,   "Chooses RESP2 or RESP3 and describes the server.", "connection", command_effect::reads, queue_source::none},
    {"auth",     -2, cmd_auth,    "Authenticates the connection.", "connection", command_effect::reads, queue_source::none},
    {"select",    2, cmd_select,  "Selects database 0 (the only one).", "connection", command_effect::reads, queue_source::none},
    {"client",   -2, cmd_client,  "CLIENT SETNAME|GETNAME|ID|SETINFO|INFO.", "connection", command_effect::reads, queue_source::none},
    {"command",  -1, cmd_command, "Describes the commands (COUNT, DOCS, INFO).", "server", command_effect::reads, queue_source::none},
    {"config",   -2, cmd_config,  "CONFIG GET <pattern>: the server's settings, read-only.", "server", command_effect::reads, queue_source::every},
    {"info",     -1, cmd_info,    "Server information and statistics by section.", "server", command_effect::reads, queue_source::every},
    {"time",      1, cmd_time,    "The server's Unix time: seconds and microseconds.", "server", command_effect::reads, queue_source::none},
    {"debug",    -2, cmd_debug,   "Test hooks (--enable-debug-command yes): LOG-FAULT.", "server", command_effect::reads, queue_source::every},
    // task lifecycle
    {"enqueue",  -3, cmd_enqueue, "Adds a task to a queue; returns its id.", "task", command_effect::adds, queue_source::first},
    {"lease",    -3, cmd_lease,   "Leases ready tasks from queues, optionally blocking.", "task", command_effect::changes, queue_source::after_from},
    {"ack",      -2, cmd_ack,     "Completes a leased task, with an optional result.", "task", command_effect::changes, queue_source::lease},
    {"fail",     -3, cmd_fail,    "Fails a leased task: retried with backoff or dead-lettered.", "task", command_effect::changes, queue_source::lease},
    {"release",  -2, cmd_release, "Gives a leased task back without counting an attempt.", "task", command_effect::changes, queue_source::lease},
    {"extend",    3, cmd_extend,  "Extends a lease to end <ms> from now.", "task", command_effect::changes, queue_source::lease},
    {"cancel",    2, cmd_cancel,  "Cancels a queued, delayed or leased task.", "task", command_effect::changes, queue_source::task},
    {"task",      2, cmd_task,    "Describes a task.", "task", command_effect::reads, queue_source::task},
    {"result",   -2, cmd_result,  "The result of a finished task, optionally waiting.", "task", command_effect::reads, queue_source::task},
    {"qlen",      2, cmd_qlen,    "Number of ready tasks in a queue.", "task", command_effect::reads, queue_source::first},
    {"queues",    1, cmd_queues,  "Names of the queues that hold tasks.", "task", command_effect::reads, queue_source::every},
    {"dead",     -2, cmd_dead,    "Ids of a queue's dead-lettered tasks, oldest first.", "task", command_effect::reads, queue_source::first},
    {"requeue",   2, cmd_requeue, "Moves a dead task back to its queue, attempts reset.", "task", command_effect::changes, queue_source::task},
    {"qpurge",    2, cmd_qpurge,  "Removes a queue's ready tasks.", "task", command_effect::changes, queue_source::first},
    // Redis lists over the same queues
    {"lpush",    -3, cmd_lpush,   "Enqueues elements (FIFO with RPOP/BRPOP).", "list", command_effect::adds, queue_source::first},
    {"rpush",    -3, cmd_rpush,   "Enqueues elements at the front (FIFO with LPOP/BLPOP).", "list", command_effect::adds, queue_source::first},
    {"lpop",     -2, cmd_lpop,    "Takes the newest elements (at-most-once).", "list", command_effect::changes, queue_source::first},
    {"rpop",     -2, cmd_rpop,    "Takes the oldest elements (at-most-once).", "list", command_effect::changes, queue_source::first},
    {"blpop",    -3, cmd_blpop,   "LPOP, blocking up to <timeout> seconds.", "list", command_effect::changes, queue_source::all_but_last},
    {"brpop",    -3, cmd_brpop,   "RPOP, blocking up to <timeout> seconds.", "list", command_effect::changes, queue_source::all_but_last},
    {"llen",      2, cmd_qlen,    "Number of ready tasks in a queue.", "list", command_effect::reads, queue_source::first},
    {"del",      -2, cmd_del,     "Deletes queues with their ready, delayed and dead tasks.", "generic", command_effect::changes, queue_source::all},
};
// clang-format on

const auto& command_index() {
    static const auto index = [] {
        std::unordered_map<std::string_view, const command_spec*> m;
        for (const auto& spec : command_table) m.emplace(spec.name, &spec);
        return m;
    }();
    return index;
}

// The admission policy (broker_service::admit_change) for a command that changes something.
// The size a change will take in the log is guessed from its arguments; records carry little
// else.
bool admitted(command_context& ctx, command_effect effect) {
    std::size_t bytes = 256;
    for (const auto& a : ctx.args) bytes += a.size();
    const auto kind = effect == command_effect::adds ? storage::change_kind::adds
                                                     : storage::change_kind::finishes;
    using admission = broker_service::admission;
    switch (ctx.service.admit_change(kind, bytes)) {
        case admission::admitted:
            return true;
        case admission::disk_full:
            ctx.out.error(
                "MISCONF the disk of the data directory is full: new tasks are refused until "
                "space returns (ACK, FAIL, LEASE and reads still work)");
            return false;
        case admission::reserve_used:
            ctx.out.error(
                "MISCONF the disk of the data directory is full and the space reserved for "
                "finishing tasks is used up: changes are refused until space returns");
            return false;
        case admission::over_memory:
            ctx.out.error(
                "OOM command not allowed when used memory > 'maxmemory' (new tasks are refused "
                "until memory is freed; LEASE, ACK, FAIL and reads still work)");
            return false;
    }
    return true;
}

// Commands a connection may send before it authenticates (HELLO only with its AUTH option).
bool allowed_before_auth(const command_spec& spec) {
    return spec.handler == cmd_auth || spec.handler == cmd_hello || spec.handler == cmd_ping ||
           spec.handler == cmd_quit;
}

// What the permission check decided for a request.
enum class verdict : std::uint8_t {
    run,      // go ahead
    refused,  // the reply (-NOAUTH, -NOPERM) is written
    hidden,   // names a task in a queue the user has no verb on: answered as an unknown id
};

// True when one of the user's rules grants some verb on `queue`.
bool sees_queue(const auth::user& rules, std::string_view queue) {
    for (const auto v :
         {auth::verb::inspect, auth::verb::consume, auth::verb::enqueue, auth::verb::admin}) {
        if (auth::allowed(rules, v, queue)) return true;
    }
    return false;
}

// A command given a task id or lease token, checked on the task's queue. An unknown task is
// let through (the command says it does not exist); so is, in effect, a task in a queue the
// user has no verb on (`hidden`): naming that queue in a NOPERM would tell anyone holding an
// id, and ids are sequential, which queues exist and what is in them.
verdict check_task(command_context& ctx, const command_spec& spec, const auth::user& rules,
                   auth::verb verb) {
    std::string_view id = ctx.args[1];
    if (spec.queues == queue_source::lease) id = id.substr(0, id.rfind('#'));
    const auto task = ctx.core().task(id, ctx.now);
    if (!task || auth::allowed(rules, verb, task->queue)) return verdict::run;
    if (!sees_queue(rules, task->queue)) return verdict::hidden;
    ++ctx.service.counters().noperm_rejections;
    ctx.out.error("NOPERM User " + ctx.client.user + " has no permissions to " +
                  std::string(auth::verb_name(verb)) + " on the '" +
                  std::string(task->queue.substr(0, 256)) + "' queue");
    return verdict::refused;
}

// The queues a command names (spec.queues other than none, every, task and lease).
std::span<const std::string> named_queues(const command_context& ctx, const command_spec& spec) {
    const auto& args = ctx.args;
    switch (spec.queues) {
        case queue_source::first:
            return args.subspan(1, 1);
        case queue_source::all:
            return args.subspan(1);
        case queue_source::all_but_last:
            return args.subspan(1, args.size() - 2);
        case queue_source::after_from: {
            std::size_t i = 1;
            while (i < args.size() && !iequals(args[i], "FROM")) ++i;
            // No FROM: the command itself answers with a syntax error and touches nothing.
            return i < args.size() ? args.subspan(i + 1) : args.subspan(args.size());
        }
        default:
            return {};
    }
}

// NOAUTH before authentication (or after the user was removed from the users file), NOPERM
// when the user's rules do not grant the command's verb on every queue it names
// (docs/users.md). The decision is access_control::access_of, as for AMQP.
verdict permitted(command_context& ctx, const command_spec& spec) {
    using kind = access_control::access_kind;
    const auto access = ctx.service.access().access_of(ctx.client);
    if (access.kind == kind::everything) return verdict::run;
    if (access.kind != kind::rules) {
        if (allowed_before_auth(spec)) return verdict::run;
        ctx.out.error("NOAUTH Authentication required.");
        return verdict::refused;
    }
    if (spec.queues == queue_source::none) return verdict::run;
    const auth::user& rules = *access.rules;
    const auto verb = auth::command_verb(spec.name);
    const auto& user = ctx.client.user;
    auto refuse = [&](std::string message) {
        ++ctx.service.counters().noperm_rejections;
        ctx.out.error(message);
        return verdict::refused;
    };
    if (!verb) {  // in the command table but not classified: denied until it is
        return refuse("NOPERM User " + user + " has no permissions to run the '" +
                      std::string(spec.name) + "' command");
    }
    const auto verb_text = std::string(auth::verb_name(*verb));
    switch (spec.queues) {
        case queue_source::every:
            if (auth::allowed_on_every_queue(rules, *verb)) return verdict::run;
            return refuse("NOPERM User " + user + " has no permissions to run the '" +
                          std::string(spec.name) + "' command: it needs " + verb_text +
                          " on every queue (" + verb_text + ":*)");
        case queue_source::task:
        case queue_source::lease:
            return check_task(ctx, spec, rules, *verb);
        default:
            for (const auto& queue : named_queues(ctx, spec)) {
                if (auth::allowed(rules, *verb, queue)) continue;
                return refuse("NOPERM User " + user + " has no permissions to " + verb_text +
                              " on the '" + queue.substr(0, 256) + "' queue");
            }
            return verdict::run;
    }
}

// Runs `spec` with its task id or lease token replaced by "", which no task has (ENQUEUE
// refuses an empty ID): the reply is the command's own reply to an unknown id, syntax errors
// included, after the same lookups.
void run_as_unknown_task(command_context& ctx, const command_spec& spec) {
    std::vector<std::string> args(ctx.args.begin(), ctx.args.end());
    args[1].clear();
    command_context unknown{args, ctx.out, ctx.service, ctx.client, ctx.waiter_target, ctx.now, {}};
    spec.handler(unknown);
    unknown.cancel_block();  // an unknown id never waits
}

// ERR when a queue the command names (by its table row) breaks the rules of queue_name.hpp,
// before the handler runs, so that no command can create, or look up, such a queue.
bool queue_names_valid(command_context& ctx, const command_spec& spec) {
    for (const auto& queue : named_queues(ctx, spec)) {
        if (!check_queue_name(ctx, queue)) return false;
    }
    return true;
}

}  // namespace

const command_spec* find_command(std::string_view name) {
    std::array<char, 16> lower{};
    if (name.size() > lower.size()) return nullptr;  // longer than any command name
    // ASCII only, without std::tolower's locale lookup: this runs for every request.
    std::transform(name.begin(), name.end(), lower.begin(), [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    });
    auto it = command_index().find(std::string_view(lower.data(), name.size()));
    return it == command_index().end() ? nullptr : it->second;
}

std::span<const command_spec> all_commands() {
    return command_table;
}

void execute_command(command_context& ctx) {
    const auto* spec = find_command(ctx.args[0]);
    if (!spec) {
        std::string msg = "ERR unknown command '";
        msg.append(ctx.args[0].substr(0, 128));
        msg.push_back('\'');
        ctx.out.error(msg);
        return;
    }
    auto argc = static_cast<int>(ctx.args.size());
    if ((spec->arity > 0 && argc != spec->arity) || (spec->arity < 0 && argc < -spec->arity)) {
        reply_wrong_arity(ctx);
        return;
    }
    const auto decided = permitted(ctx, *spec);
    if (decided == verdict::refused) return;
    if (!queue_names_valid(ctx, *spec)) return;
    if (spec->effect != command_effect::reads && !admitted(ctx, spec->effect)) return;
    if (decided == verdict::hidden) return run_as_unknown_task(ctx, *spec);
    spec->handler(ctx);
}

bool recheck_blocked_command(command_context& ctx) {
    const auto* spec = find_command(ctx.args[0]);
    if (!spec) return true;
    switch (permitted(ctx, *spec)) {
        case verdict::run:
            return true;
        case verdict::refused:
            return false;
        case verdict::hidden:
            run_as_unknown_task(ctx, *spec);  // RESULT WAIT: nil, at once
            return false;
    }
    return true;
}

core::waiter_id command_context::start_block(std::optional<std::int64_t> timeout_ms,
                                             timeout_reply on_timeout) {
    block_request b;
    b.waiter = service.add_waiter(waiter_target);
    // Commands take at most core::max_duration_ms; the clamp keeps the sum far from the
    // nanosecond clock's limit for any caller.
    if (timeout_ms && *timeout_ms > 0)
        b.deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(std::min(*timeout_ms, core::max_duration_ms));
    b.on_timeout = on_timeout;
    block = b;
    return b.waiter;
}

void command_context::cancel_block() {
    if (block) service.forget_waiter(block->waiter);
    block.reset();
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
               return std::tolower(x) == std::tolower(y);
           });
}

std::optional<std::int64_t> parse_int(std::string_view s) noexcept {
    std::int64_t v = 0;
    if (s.empty() || s.size() > 20) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<std::int64_t> arg_non_negative(command_context& ctx, std::string_view s,
                                             std::string_view what) {
    auto v = parse_int(s);
    if (!v) {
        ctx.out.error("ERR value is not an integer or out of range");
        return std::nullopt;
    }
    if (*v < 0) {
        ctx.out.error(std::string("ERR ") + std::string(what) + " must not be negative");
        return std::nullopt;
    }
    return v;
}

std::optional<std::int64_t> arg_duration(command_context& ctx, std::string_view s,
                                         std::string_view what) {
    auto v = arg_non_negative(ctx, s, what);
    if (v && *v > core::max_duration_ms) {
        ctx.out.error("ERR " + core::out_of_range_message(what));
        return std::nullopt;
    }
    return v;
}

bool check_payload_size(command_context& ctx, std::string_view bytes, std::string_view what) {
    if (static_cast<std::int64_t>(bytes.size()) <= ctx.service.config().max_payload) return true;
    ctx.out.error("ERR " + std::string(what) + " is larger than max-payload (" +
                  std::to_string(ctx.service.config().max_payload) + " bytes)");
    return false;
}

bool check_queue_name(command_context& ctx, std::string_view queue) {
    const auto problem = queue_name_problem(queue);
    if (!problem) return true;
    ctx.out.error("ERR " + std::string(*problem));
    return false;
}

void reply_syntax_error(command_context& ctx) {
    ctx.out.error("ERR syntax error");
}

void reply_wrong_arity(command_context& ctx) {
    const auto* spec = find_command(ctx.args[0]);
    std::string msg = "ERR wrong number of arguments for '";
    msg.append(spec ? spec->name : std::string_view(ctx.args[0]));
    msg.append("' command");
    ctx.out.error(msg);
}

}  // namespace conveyor::server

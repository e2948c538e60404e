// Connection and server commands that redis-cli, redis-benchmark and redis-py need.
#include <conveyor/resp/commands.hpp>
#include <conveyor/resp/info.hpp>

#include <chrono>

namespace conveyor::server {
namespace {

// Glob match with * ? and \ escapes (CONFIG GET patterns). Iterative, backtracking only to the
// last star: O(pattern * text) at worst, never exponential.
bool glob_match(std::string_view pattern, std::string_view text) {
    std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            mark = t;
        } else if (p < pattern.size() &&
                   (pattern[p] == '?' ||
                    (pattern[p] == '\\' && p + 1 < pattern.size() && pattern[p + 1] == text[t]) ||
                    std::tolower(static_cast<unsigned char>(pattern[p])) ==
                        std::tolower(static_cast<unsigned char>(text[t])))) {
            p += (pattern[p] == '\\') ? 2 : 1;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

void write_hello_map(protocol::resp_writer& out, const client_state& client) {
    out.map_header(7);
    out.bulk("server"), out.bulk("conveyor");
    out.bulk("version"), out.bulk(CONVEYOR_VERSION);
    out.bulk("proto"), out.integer(static_cast<int>(out.version()));
    out.bulk("id"), out.integer(static_cast<std::int64_t>(client.id));
    out.bulk("mode"), out.bulk("standalone");
    out.bulk("role"), out.bulk("master");
    out.bulk("modules"), out.array_header(0);
}

bool valid_client_name(std::string_view name) {
    for (unsigned char c : name)
        if (c < '!' || c > '~') return false;
    return true;
}

void write_command_info(protocol::resp_writer& out, const command_spec& spec) {
    out.array_header(6);
    out.bulk(spec.name);
    out.integer(spec.arity);
    out.set_header(0);
    bool keyed = spec.group == "task" || spec.group == "list" || spec.group == "generic";
    out.integer(keyed ? 1 : 0);
    out.integer(keyed ? 1 : 0);
    out.integer(keyed ? 1 : 0);
}

}  // namespace

/* PING [<message>] */
void cmd_ping(command_context& ctx) {
    if (ctx.args.size() > 2) return reply_wrong_arity(ctx);
    if (ctx.args.size() == 2) return ctx.out.bulk(ctx.args[1]);
    ctx.out.simple("PONG");
}

/* ECHO <message> */
void cmd_echo(command_context& ctx) {
    ctx.out.bulk(ctx.args[1]);
}

/* QUIT */
void cmd_quit(command_context& ctx) {
    ctx.client.quit = true;
    ctx.out.simple("OK");
}

namespace {

// AUTH and HELLO ... AUTH. The password check may run off the core thread (PBKDF2 for users
// of the file): the connection then waits, as a blocked command does, and `on_ok` (the
// command's own reply) or the error is written when the verdict is back.
using auth_success = std::function<void(protocol::resp_writer&, client_state&)>;

void finish_auth(const access_control::auth_verdict& verdict, server_counters& counters,
                 const auth_success& on_ok, protocol::resp_writer& out, client_state& client) {
    using outcome = access_control::auth_outcome;
    switch (verdict.outcome) {
        case outcome::ok:
            access_control::apply(client, verdict);
            return on_ok(out, client);
        case outcome::wrong:
            ++counters.auth_failures;
            return out.error("WRONGPASS invalid username-password pair or user is disabled.");
        case outcome::no_default_password:
            return out.error(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?");
    }
}

void run_auth(command_context& ctx, std::optional<std::string_view> user, std::string_view password,
              auth_success on_ok) {
    broker_service* service = &ctx.service;
    const core::waiter_id waiter = ctx.start_block(std::nullopt, timeout_reply::null_bulk);
    auto verdict = service->access().authenticate(
        ctx.client, user, password, [service, waiter, on_ok](access_control::auth_verdict v) {
            // The waiter is the session that ran the command (command_context::waiter_target).
            service->complete_deferred(
                waiter, [service, v = std::move(v), on_ok](waiting_client& session) {
                    static_cast<resp_waiter&>(session).on_deferred(
                        [&](protocol::resp_writer& out, client_state& client) {
                            finish_auth(v, service->counters(), on_ok, out, client);
                        });
                });
        });
    if (!verdict) return;  // the session waits for complete_deferred
    ctx.cancel_block();
    finish_auth(*verdict, service->counters(), on_ok, ctx.out, ctx.client);
}

}  // namespace

/* HELLO [<protover> [AUTH <username> <password>] [SETNAME <clientname>]] */
void cmd_hello(command_context& ctx) {
    std::size_t i = 1;
    std::optional<protocol::resp_version> version;
    if (ctx.args.size() > 1) {
        auto ver = parse_int(ctx.args[1]);
        if (!ver) return ctx.out.error("ERR Protocol version is not an integer or out of range");
        if (*ver != 2 && *ver != 3) return ctx.out.error("NOPROTO unsupported protocol version");
        version = *ver == 3 ? protocol::resp_version::resp3 : protocol::resp_version::resp2;
        i = 2;
    }
    // Options are checked before anything changes, as Redis does: a bad option or a failed
    // AUTH leaves the protocol version and the name as they were.
    std::optional<std::size_t> auth_at;
    std::optional<std::string_view> name;
    for (; i < ctx.args.size(); ++i) {
        if (iequals(ctx.args[i], "AUTH") && i + 2 < ctx.args.size()) {
            auth_at = i;
            i += 2;
        } else if (iequals(ctx.args[i], "SETNAME") && i + 1 < ctx.args.size()) {
            if (!valid_client_name(ctx.args[i + 1]))
                return ctx.out.error(
                    "ERR Client names cannot contain spaces, newlines or "
                    "special characters.");
            name = ctx.args[++i];
        } else {
            return ctx.out.error("ERR Syntax error in HELLO option '" + ctx.args[i] + "'");
        }
    }
    auto on_ok = [version, name = name ? std::optional<std::string>(*name) : std::nullopt](
                     protocol::resp_writer& out, client_state& client) {
        if (version) out.set_version(*version);
        if (name) client.name = *name;
        write_hello_map(out, client);
    };
    if (auth_at) return run_auth(ctx, ctx.args[*auth_at + 1], ctx.args[*auth_at + 2], on_ok);
    if (!ctx.client.authenticated) {
        return ctx.out.error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time");
    }
    on_ok(ctx.out, ctx.client);
}

/* AUTH [<username>] <password> */
void cmd_auth(command_context& ctx) {
    if (ctx.args.size() > 3) return reply_syntax_error(ctx);
    const bool with_user = ctx.args.size() == 3;
    run_auth(ctx, with_user ? std::optional<std::string_view>(ctx.args[1]) : std::nullopt,
             ctx.args.back(), [](protocol::resp_writer& out, client_state&) { out.simple("OK"); });
}

/* SELECT <index> */
void cmd_select(command_context& ctx) {
    auto db = parse_int(ctx.args[1]);
    if (!db) return ctx.out.error("ERR value is not an integer or out of range");
    if (*db != 0) return ctx.out.error("ERR DB index is out of range");
    ctx.out.simple("OK");
}

/* CLIENT SETNAME <name> | GETNAME | ID | SETINFO <attr> <value> | INFO | LIST */
void cmd_client(command_context& ctx) {
    const auto& sub = ctx.args[1];
    auto n = ctx.args.size();
    if (iequals(sub, "SETNAME") && n == 3) {
        if (!valid_client_name(ctx.args[2]))
            return ctx.out.error(
                "ERR Client names cannot contain spaces, newlines or special "
                "characters.");
        ctx.client.name = ctx.args[2];
        return ctx.out.simple("OK");
    }
    if (iequals(sub, "GETNAME") && n == 2)
        return ctx.client.name.empty() ? ctx.out.null() : ctx.out.bulk(ctx.client.name);
    if (iequals(sub, "ID") && n == 2)
        return ctx.out.integer(static_cast<std::int64_t>(ctx.client.id));
    if (iequals(sub, "SETINFO") && n == 4) return ctx.out.simple("OK");
    if ((iequals(sub, "INFO") && n == 2) || (iequals(sub, "LIST") && n == 2)) {
        return ctx.out.verbatim("id=" + std::to_string(ctx.client.id) + " addr=" + ctx.client.peer +
                                " name=" + ctx.client.name +
                                " resp=" + std::to_string(static_cast<int>(ctx.out.version())) +
                                " user=" + ctx.client.user +
                                " leases=" + std::to_string(ctx.client.leases.size()) + "\n");
    }
    ctx.out.error("ERR unknown subcommand or wrong number of arguments for '" + sub +
                  "'. Try CLIENT HELP.");
}

/* COMMAND [COUNT | DOCS [<name> ...] | INFO [<name> ...]] */
void cmd_command(command_context& ctx) {
    auto commands = all_commands();
    if (ctx.args.size() == 1) {
        ctx.out.array_header(commands.size());
        for (const auto& spec : commands) write_command_info(ctx.out, spec);
        return;
    }
    const auto& sub = ctx.args[1];
    if (iequals(sub, "COUNT") && ctx.args.size() == 2)
        return ctx.out.integer(static_cast<std::int64_t>(commands.size()));
    bool docs = iequals(sub, "DOCS");
    if (!docs && !iequals(sub, "INFO"))
        return ctx.out.error("ERR unknown subcommand '" + sub + "'. Try COMMAND HELP.");

    std::vector<const command_spec*> chosen;
    if (ctx.args.size() == 2) {
        for (const auto& spec : commands) chosen.push_back(&spec);
    } else {
        for (std::size_t i = 2; i < ctx.args.size(); ++i)
            chosen.push_back(find_command(ctx.args[i]));
    }
    if (!docs) {
        ctx.out.array_header(chosen.size());
        for (const auto* spec : chosen) spec ? write_command_info(ctx.out, *spec) : ctx.out.null();
        return;
    }
    std::size_t known = 0;
    for (const auto* spec : chosen) known += spec ? 1 : 0;
    ctx.out.map_header(known);
    for (const auto* spec : chosen) {
        if (!spec) continue;
        ctx.out.bulk(spec->name);
        ctx.out.map_header(3);
        ctx.out.bulk("summary"), ctx.out.bulk(spec->summary);
        ctx.out.bulk("since"), ctx.out.bulk("0.1.0");
        ctx.out.bulk("group"), ctx.out.bulk(spec->group);
    }
}

/* CONFIG GET <pattern> [<pattern> ...]  (CONFIG SET, REWRITE, RESETSTAT: refused) */
void cmd_config(command_context& ctx) {
    if (!iequals(ctx.args[1], "GET")) {
        return ctx.out.error("ERR CONFIG " + ctx.args[1] +
                             " is not supported: settings are read-only, change them with flags "
                             "or the config file");
    }
    if (ctx.args.size() < 3) return reply_wrong_arity(ctx);
    std::vector<std::pair<std::string, std::string>> matched;
    for (const auto& [name, value] : ctx.service.config().as_pairs()) {
        for (std::size_t i = 2; i < ctx.args.size(); ++i) {
            if (glob_match(ctx.args[i], name)) {
                matched.emplace_back(name, value);
                break;
            }
        }
    }
    ctx.out.map_header(matched.size());
    for (const auto& [name, value] : matched) ctx.out.bulk(name), ctx.out.bulk(value);
}

/* INFO [<section> ...] */
void cmd_info(command_context& ctx) {
    std::vector<std::string_view> sections(ctx.args.begin() + 1, ctx.args.end());
    ctx.out.verbatim(render_info(ctx.service, sections, ctx.now));
}

namespace {
/* DEBUG LOOP-FAULT DEADLINE | HOUSEKEEPING: the loop's next turn throws (fail-stop test). */
void debug_loop_fault(command_context& ctx) {
    const std::string& loop = ctx.args[2];
    if (iequals(loop, "DEADLINE")) {
        ctx.service.inject_loop_fault("deadline");
    } else if (iequals(loop, "HOUSEKEEPING")) {
        ctx.service.inject_loop_fault("housekeeping");
    } else {
        return ctx.out.error("ERR unknown LOOP-FAULT '" + loop + "'. Try DEADLINE or HOUSEKEEPING");
    }
    ctx.out.simple("OK");
}
}  // namespace

/* DEBUG LOG-FAULT EIO-WRITE | EIO-SYNC | SLOW-SYNC <ms> | DISK-FULL | OFF
   DEBUG LOOP-FAULT DEADLINE | HOUSEKEEPING
   Faults for tests, injected below the log or into the core thread's loops (only with
   --enable-debug-command yes). */
void cmd_debug(command_context& ctx) {
    auto* io = ctx.service.debug_io();
    if (io == nullptr) {
        return ctx.out.error(
            "ERR DEBUG command not allowed. Start the server with --enable-debug-command yes "
            "to use it.");
    }
    if (iequals(ctx.args[1], "LOOP-FAULT") && ctx.args.size() == 3) return debug_loop_fault(ctx);
    if (!iequals(ctx.args[1], "LOG-FAULT") || ctx.args.size() < 3) {
        return ctx.out.error("ERR unknown DEBUG subcommand or wrong number of arguments for '" +
                             ctx.args[1] +
                             "'. Try DEBUG LOG-FAULT EIO-WRITE|EIO-SYNC|SLOW-SYNC "
                             "<ms>|DISK-FULL|OFF or DEBUG LOOP-FAULT DEADLINE|HOUSEKEEPING");
    }
    const std::string& kind = ctx.args[2];
    if (iequals(kind, "EIO-WRITE") && ctx.args.size() == 3) {
        io->fail_write(io->writes() + 1, EIO, 3);  // a short write, then the error
    } else if (iequals(kind, "EIO-SYNC") && ctx.args.size() == 3) {
        io->fail_sync(io->syncs() + 1, EIO);
    } else if (iequals(kind, "SLOW-SYNC") && ctx.args.size() == 4) {
        auto ms = parse_int(ctx.args[3]);
        if (!ms || *ms < 0 || *ms > 60000) {
            return ctx.out.error("ERR SLOW-SYNC takes milliseconds between 0 and 60000");
        }
        io->delay_syncs(std::chrono::milliseconds(*ms));
    } else if (iequals(kind, "DISK-FULL") && ctx.args.size() == 3) {
        io->set_disk_full(true);
    } else if (iequals(kind, "OFF") && ctx.args.size() == 3) {
        io->fail_write(0, 0);
        io->fail_sync(0, 0);
        io->delay_syncs(std::chrono::milliseconds(0));
        io->set_disk_full(false);
    } else {
        return ctx.out.error("ERR unknown LOG-FAULT '" + kind +
                             "'. Try EIO-WRITE, EIO-SYNC, SLOW-SYNC <ms>, DISK-FULL or OFF");
    }
    ctx.out.simple("OK");
}

/* TIME */
void cmd_time(command_context& ctx) {
    using namespace std::chrono;
    auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
    ctx.out.array_header(2);
    ctx.out.bulk(std::to_string(us / 1000000));
    ctx.out.bulk(std::to_string(us % 1000000));
}

}  // namespace conveyor::server

// libFuzzer target for the command layer. The input is a stream of RESP requests, split by the
// request decoder as a session splits its input, and run in order through execute_command
// against a fresh broker_service with no log, the way resp_session runs them, without sockets.
// Two simulated clients share the broker so that one can block (LEASE BLOCK, BLPOP, RESULT
// WAIT) and the other wake it.
//
// An input that starts with the line `@secure` runs against a server with --requirepass pw and
// a users file (alice: enqueue/consume on a*, bob: inspect on *, carol: no rules; every
// password `pw`, hashed with one PBKDF2 round so that AUTH stays cheap), so that NOAUTH,
// AUTH, HELLO AUTH and the NOPERM checks (queues, task ids, leases) are driven too.
//
// Harness requests (never sent to the broker):
//   @client <n>   the requests that follow come from client n % 2
//   @tick <ms>    the clock moves on by <ms> (clamped to a day) and the broker's deadlines run
// An argument `@id`/`@idN` or `@lease`/`@leaseN` stands for the newest (N-th newest, mod
// count) task id or lease token seen in a reply, so that ACK, FAIL, TASK ... reach real tasks.
//
// Checks: no crash, sanitizer report or exception; every command is answered by exactly one
// well-formed reply, at once or (a blocked one) when it is served or gives up; no deadline
// leaves the time range (every record within core::max_duration_ms of its own time, the next
// deadline within it of now, so converting it to steady_clock time cannot wrap). DEBUG is never
// run. The clock is a value advanced only by @tick, so a run depends on its input alone (save
// for the backoff jitter's seed, which broker_service draws at random). With
// CONVEYOR_FUZZ_TRACE=1 in the environment each request and its replies go to stderr, to read
// what a saved input does.
#include <conveyor/resp/commands.hpp>
#include <conveyor/runtime/broker_service.hpp>
#include <conveyor/runtime/config.hpp>

#include <conveyor/protocol/resp_decoder.hpp>
#include <conveyor/protocol/resp_reply_decoder.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <conveyor/auth/password.hpp>

#include <boost/asio/io_context.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace {

using namespace conveyor;
using namespace conveyor::server;

// Small enough that the payload limit is reachable from short inputs.
constexpr std::int64_t max_payload = 4096;
constexpr std::size_t handles_kept = 16;
const bool trace = std::getenv("CONVEYOR_FUZZ_TRACE") != nullptr;

void print_escaped(std::string_view prefix, std::string_view bytes) {
    std::string line(prefix);
    for (unsigned char c : bytes) {
        if (c >= 0x20 && c < 0x7f) {
            line += static_cast<char>(c);
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            line += hex;
        }
    }
    std::fprintf(stderr, "%s\n", line.c_str());
}

struct handles {
    std::deque<std::string> ids;
    std::deque<std::string> leases;

    static void keep(std::deque<std::string>& list, const std::string& value) {
        if (list.size() == handles_kept) list.pop_front();
        list.push_back(value);
    }
    // Remembers task ids and lease tokens from a reply tree: the bulk after a key "id" or
    // "lease" in a map (or a RESP2 flat array of pairs), or an ENQUEUE reply itself.
    void collect(const protocol::resp_value& v) {
        const auto& e = v.elements;
        for (std::size_t i = 0; i + 1 < e.size(); ++i) {
            if (e[i].type != protocol::resp_type::bulk_string ||
                e[i + 1].type != protocol::resp_type::bulk_string)
                continue;
            if (e[i].text == "id") keep(ids, e[i + 1].text);
            if (e[i].text == "lease") keep(leases, e[i + 1].text);
        }
        for (const auto& child : e) collect(child);
    }
    // `@id` -> the newest id kept, `@id3` the fourth newest (mod count); others unchanged.
    void substitute(std::string& arg) const {
        auto pick = [&arg](std::string_view prefix, const std::deque<std::string>& list) {
            if (list.empty() || arg.size() > prefix.size() + 2 || !arg.starts_with(prefix))
                return false;
            std::size_t n = 0;
            for (char c : std::string_view(arg).substr(prefix.size())) {
                if (c < '0' || c > '9') return false;
                n = n * 10 + static_cast<std::size_t>(c - '0');
            }
            arg = list[list.size() - 1 - n % list.size()];
            return true;
        };
        if (!arg.empty() && arg[0] == '@') pick("@lease", leases) || pick("@id", ids);
    }
};

// One simulated connection: what resp_session keeps per client, minus the socket.
class fuzz_session final : public resp_waiter {
public:
    fuzz_session(broker_service& service, std::uint64_t id, handles& seen)
        : service_(service), seen_(seen), writer_(out_, protocol::resp_version::resp2) {
        client_.id = id;
        client_.peer = "127.0.0.1:" + std::to_string(40000 + id);
        if (service_.admit(client_)) __builtin_trap();  // loopback: never refused
    }
    // The writer points into out_: never copied or moved.
    fuzz_session(const fuzz_session&) = delete;
    fuzz_session& operator=(const fuzz_session&) = delete;

    void run(std::vector<std::string>& args, core::instant now) {
        if (block_) give_up();  // a real client would still be waiting; here it times out
        const bool enqueue = iequals(args[0], "enqueue");
        command_context ctx{args, writer_, service_, client_, *this, now, {}};
        execute_command(ctx);
        ++service_.counters().commands_processed;
        service_.deadlines_changed();
        if (ctx.block) {
            block_ = ctx.block;
        } else {
            ++owed_;
        }
        check_replies(enqueue);
        if (client_.quit) close();
    }

    // The blocked command's wait ends unserved, as when its deadline passes.
    void give_up() {
        service_.forget_waiter(block_->waiter);
        write_timeout(writer_, block_->on_timeout);
        block_.reset();
        ++owed_;
        check_replies(false);
    }

    // The connection ends: a blocked command gives up its place (resp_session::end_session).
    void close() {
        if (block_) service_.forget_waiter(block_->waiter);
        block_.reset();
        const std::uint64_t id = client_.id;
        client_ = client_state{};
        client_.id = id + 2;
        client_.peer = "127.0.0.1:" + std::to_string(40000 + client_.id);
        if (service_.admit(client_)) __builtin_trap();
        writer_.set_version(protocol::resp_version::resp2);
    }

    bool blocked() const noexcept { return block_.has_value(); }

    // Everything written since the last check must be exactly `owed_` complete replies.
    void check_replies(bool enqueue) {
        if (trace && !out_.empty())
            print_escaped("  client " + std::to_string(client_.id) + " <- ", out_);
        protocol::resp_reply_decoder decoder({.max_bulk_len = 1 << 30});
        std::string_view rest = out_;
        protocol::resp_value reply;
        std::size_t replies = 0;
        while (!rest.empty()) {
            auto r = decoder.feed(rest, reply);
            if (r.status == protocol::reply_status::error) __builtin_trap();  // malformed reply
            rest.remove_prefix(r.consumed);
            if (r.status == protocol::reply_status::need_more) break;
            ++replies;
            seen_.collect(reply);
            if (enqueue && reply.type == protocol::resp_type::bulk_string)
                handles::keep(seen_.ids, reply.text);
        }
        if (!rest.empty() || replies != owed_) __builtin_trap();  // a command answered 0 or 2 times
        out_.clear();
        owed_ = 0;
    }

private:
    void on_leased(std::span<const core::leased_task> tasks) override {
        write_leased_tasks(writer_, tasks);
        served();
    }
    void on_popped(std::string_view queue, std::string_view payload) override {
        write_popped(writer_, queue, payload);
        served();
    }
    void on_result(const core::task_view& task) override {
        write_result(writer_, task);
        served();
    }
    void on_deferred(const deferred_reply& finish) override {
        finish(writer_, client_);
        served();
    }
    // Called from inside another client's command; that command's caller checks replies.
    void served() {
        if (!block_) __builtin_trap();  // woken without waiting
        block_.reset();
        ++owed_;
    }

    broker_service& service_;
    handles& seen_;
    std::string out_;
    protocol::resp_writer writer_;
    client_state client_;
    std::optional<block_request> block_;
    std::size_t owed_ = 0;
};

// The time range: a deadline past it (INT64_MAX from a huge DELAY, once) converted to
// steady_clock time wrapped into the past and spun the deadline timer forever.
void check_next_deadline(broker_service& service, core::instant now) {
    const auto next = service.core().next_deadline();
    if (next && *next > core::add_ms(now.mono_us, core::max_duration_ms)) __builtin_trap();
    if (next && steady_from_mono(*next, 0) == std::chrono::steady_clock::time_point::max())
        __builtin_trap();
}

std::optional<std::int64_t> harness_number(const std::vector<std::string>& args) {
    if (args.size() != 2) return std::nullopt;
    return parse_int(args[1]);
}

}  // namespace

static std::string users_file_path;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    spdlog::set_level(spdlog::level::off);
    char path[] = "/tmp/conveyor-fuzz-users-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) std::abort();
    const std::string hash = auth::hash_password("pw", 1);
    const std::string text = "user alice " + hash + " allow enqueue:a* allow consume:a*\n" +
                             "user bob " + hash + " allow inspect:*\n" + "user carol " + hash +
                             "\n";
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) std::abort();
    ::close(fd);
    users_file_path = path;
    std::atexit([] { ::unlink(users_file_path.c_str()); });
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static boost::asio::io_context io;  // only for the service's timers; never run

    server_config config;
    config.max_payload = max_payload;
    config.port = 0;
    std::string_view input(reinterpret_cast<const char*>(data), size);
    for (std::string_view secure : {"@secure\r\n", "@secure\n"}) {
        if (input.starts_with(secure)) {
            input.remove_prefix(secure.size());
            config.requirepass = "pw";
            config.users_file = users_file_path;
            break;
        }
    }
    broker_service service(io.get_executor(), config);
    if (service.access().load()) __builtin_trap();
    // Without a log nothing else takes the records: check each one's times.
    service.core().set_record_sink([](const core::record& r) {
        if (!core::record_times_in_range(r)) __builtin_trap();
    });
    handles seen;
    std::array<fuzz_session, 2> sessions{fuzz_session(service, 1, seen),
                                         fuzz_session(service, 2, seen)};
    std::size_t current = 0;
    core::instant now{1'000'000'000, 1'700'000'000'000};

    // The limits resp_session derives from the config (limits_for).
    protocol::resp_limits limits;
    limits.max_bulk_len = static_cast<std::size_t>(config.max_payload);
    protocol::resp_request_decoder decoder(limits);
    std::vector<std::string> args;
    while (!input.empty()) {
        auto r = decoder.feed(input, args);
        input.remove_prefix(r.consumed);
        // An incomplete last request is left unread; a protocol error closes the connection
        // after its -ERR reply, which only the session writes (not tested here).
        if (r.status != protocol::decode_status::request) break;
        if (args.empty()) continue;  // empty inline line
        auto& session = sessions[current];
        for (auto& a : args) seen.substitute(a);
        if (trace) {
            std::string line = std::to_string(current) + " ->";
            for (const auto& a : args) line += " " + a;
            print_escaped("", line);
        }
        if (args[0] == "@client") {
            if (auto n = harness_number(args)) current = static_cast<std::size_t>(*n) & 1;
        } else if (args[0] == "@tick") {
            auto ms = harness_number(args).value_or(0);
            ms = std::clamp<std::int64_t>(ms, 0, 86'400'000);
            now.mono_us += ms * 1000;
            now.wall_ms += ms;
            service.core().tick(now);
            for (auto& s : sessions) s.check_replies(false);
            check_next_deadline(service, now);
        } else if (!iequals(args[0], "debug")) {  // DEBUG LOG-FAULT needs the log: never run
            session.run(args, now);
            // Another client may have been served by this command.
            for (auto& s : sessions) s.check_replies(false);
            check_next_deadline(service, now);
        }
    }
    for (auto& s : sessions) {
        if (s.blocked()) s.give_up();
        s.close();
    }
    service.stop();
    return 0;
}

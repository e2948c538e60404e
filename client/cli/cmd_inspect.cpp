// The read-only subcommands: result, task, queues.
#include "cli_commands.hpp"
#include "cli_text.hpp"

#include <conveyor/client/text.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

namespace conveyor::cli {

namespace cc = conveyor::client;
namespace json = boost::json;

cc::awaitable<std::string> explain_no_result(cc::connection& conn, std::string id) {
    auto info = co_await conn.task(id);
    if (!info) co_return "unknown task " + id;
    co_return "task " + id + " has not finished (state: " + cc::to_string(info->state) + ")";
}

namespace {

// ---- result ------------------------------------------------------------------------------

constexpr std::string_view result_usage = R"(Usage: conveyor result <id> [--wait <d>]

Prints the result of a task that succeeded: its bytes, unchanged (exit 0). Exit 1, with the
reason on stderr, when the task failed (dead-lettered: its error), was cancelled, has not
finished, or is unknown.

Options:
  --wait <d>                 wait up to this long for the task to finish (0: forever;
                             500ms, 1.5s, 5m, 1h; bare: ms)
)";
constexpr option_spec result_specs[] = {{"wait", 1}};

int run_result(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 1, "<id>");
    const std::string& id = args.positional[0];
    std::optional<std::int64_t> wait_ms;
    if (auto v = args.get("wait")) wait_ms = parse_duration_ms("wait", *v);
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        cc::task_result r = co_await conn.result(id, wait_ms);
        if (auto code = report_result(ctx, id, r)) co_return *code;
        report(ctx, co_await explain_no_result(conn, id));
        co_return exit_failure;
    });
}

// ---- task --------------------------------------------------------------------------------

constexpr std::string_view task_usage = R"(Usage: conveyor task <id> [--json]

Prints a task's fields, one 'field: value' per line: id, queue, name, state (queued, delayed,
leased, succeeded, dead, cancelled), attempt, priority, result and error (only when set),
created_ms, updated_ms (Unix ms). Bytes that are not printable UTF-8 are escaped (\n, \xNN).
Exit 1 for an unknown id.

Options:
  --json                     one JSON object instead; a field whose bytes are not UTF-8 is
                             base64-encoded and flagged by "<field>_encoding": "base64"
)";
constexpr option_spec task_specs[] = {{"json", 0}};

void put_bytes(json::object& o, std::string_view key, std::string_view bytes) {
    if (client::is_valid_utf8(bytes)) {
        o[key] = bytes;
    } else {
        o[key] = client::base64_encode(bytes);
        o[std::string(key) + "_encoding"] = "base64";
    }
}

std::string task_as_json(const cc::task_info& t) {
    json::object o;
    put_bytes(o, "id", t.id);
    put_bytes(o, "queue", t.queue);
    put_bytes(o, "name", t.name);
    o["state"] = cc::to_string(t.state);
    o["attempt"] = t.attempt;
    o["priority"] = t.priority;
    if (t.result)
        put_bytes(o, "result", *t.result);
    else
        o["result"] = nullptr;
    if (t.error)
        put_bytes(o, "error", *t.error);
    else
        o["error"] = nullptr;
    o["created_ms"] = t.created_ms;
    o["updated_ms"] = t.updated_ms;
    return json::serialize(o);
}

std::string task_as_lines(const cc::task_info& t) {
    std::string out;
    auto field = [&](std::string_view name, std::string_view value) {
        out.append(name).append(": ").append(value).append("\n");
    };
    field("id", escape_for_line(t.id));
    field("queue", escape_for_line(t.queue));
    field("name", escape_for_line(t.name));
    field("state", cc::to_string(t.state));
    field("attempt", std::to_string(t.attempt));
    field("priority", std::to_string(t.priority));
    if (t.result) field("result", escape_for_line(*t.result));
    if (t.error) field("error", escape_for_line(*t.error));
    field("created_ms", std::to_string(t.created_ms));
    field("updated_ms", std::to_string(t.updated_ms));
    return out;
}

int run_task(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 1, "<id>");
    const std::string& id = args.positional[0];
    const bool as_json = args.has("json");
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        auto info = co_await conn.task(id);
        if (!info) {
            report(ctx, "unknown task " + id);
            co_return exit_failure;
        }
        if (as_json)
            write_line(task_as_json(*info));
        else
            std::cout << task_as_lines(*info);
        co_return exit_ok;
    });
}

// ---- queues ------------------------------------------------------------------------------

constexpr std::string_view queues_usage = R"(Usage: conveyor queues [--json]

Prints one line per queue that holds any task, sorted by name, under the header
QUEUE READY DELAYED LEASED DEAD. (Against a broker without INFO queues, only READY is
known; the other columns show '-'.)

Options:
  --json                     a JSON array of {"queue", "ready", "delayed", "leased", "dead"}
)";
constexpr option_spec queues_specs[] = {{"json", 0}};

constexpr std::int64_t unknown_count = -1;

struct queue_counts {
    std::string queue;
    std::int64_t ready = unknown_count;
    std::int64_t delayed = unknown_count;
    std::int64_t leased = unknown_count;
    std::int64_t dead = unknown_count;
};

// One `<queue>:ready=<n>,delayed=<n>,leased=<n>,dead=<n>` line of INFO queues; the queue name
// may itself hold ':', the counts never do, so the last ':' splits them.
std::optional<queue_counts> parse_queue_line(std::string_view line) {
    auto colon = line.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    queue_counts q;
    q.queue = std::string(line.substr(0, colon));
    std::string_view rest = line.substr(colon + 1);
    while (!rest.empty()) {
        auto comma = rest.find(',');
        std::string_view pair = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        auto eq = pair.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        std::string_view key = pair.substr(0, eq), value = pair.substr(eq + 1);
        std::int64_t n = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc{} || end != value.data() + value.size()) return std::nullopt;
        if (key == "ready")
            q.ready = n;
        else if (key == "delayed")
            q.delayed = n;
        else if (key == "leased")
            q.leased = n;
        else if (key == "dead")
            q.dead = n;
    }
    if (q.ready == unknown_count) return std::nullopt;
    return q;
}

// The "# Queues" section of an INFO reply; nullopt when the reply has none (an error reply,
// or a broker that does not know the section).
std::optional<std::vector<queue_counts>> parse_info_queues(const cc::reply& r) {
    if (r.type != protocol::resp_type::bulk_string && r.type != protocol::resp_type::verbatim)
        return std::nullopt;
    std::istringstream text(r.text);
    std::string line;
    bool seen = false, in_section = false;
    std::vector<queue_counts> out;
    while (std::getline(text, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.starts_with("#")) {
            in_section = line == "# Queues";
            seen = seen || in_section;
        } else if (in_section && !line.empty()) {
            if (auto q = parse_queue_line(line)) out.push_back(std::move(*q));
        }
    }
    if (!seen) return std::nullopt;
    return out;
}

cc::awaitable<std::vector<queue_counts>> fetch_queue_counts(cc::connection& conn) {
    cc::reply info = co_await conn.command("INFO", "queues");
    if (auto parsed = parse_info_queues(info)) co_return std::move(*parsed);
    std::vector<queue_counts> out;
    for (auto& name : co_await conn.queues()) {
        queue_counts q{name};
        q.ready = co_await conn.qlen(name);
        out.push_back(std::move(q));
    }
    co_return out;
}

std::string count_text(std::int64_t n) {
    return n == unknown_count ? "-" : std::to_string(n);
}

void print_table(std::vector<queue_counts>& queues) {
    std::size_t width = 5;  // "QUEUE"
    for (auto& q : queues) {
        q.queue = escape_for_line(q.queue);
        width = std::max(width, q.queue.size());
    }
    std::ostringstream out;
    auto row = [&](std::string_view a, std::string_view b, std::string_view c, std::string_view d,
                   std::string_view e) {
        out << std::left << std::setw(int(width)) << a << std::right << "  " << std::setw(9) << b
            << "  " << std::setw(9) << c << "  " << std::setw(9) << d << "  " << std::setw(9) << e
            << "\n";
    };
    row("QUEUE", "READY", "DELAYED", "LEASED", "DEAD");
    for (const auto& q : queues)
        row(q.queue, count_text(q.ready), count_text(q.delayed), count_text(q.leased),
            count_text(q.dead));
    std::cout << out.str();
}

json::value count_json(std::int64_t n) {
    return n == unknown_count ? json::value(nullptr) : json::value(n);
}

int run_queues(const cli_context& ctx, const parsed_args& args) {
    expect_positionals(args, 0, "no arguments");
    const bool as_json = args.has("json");
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        auto queues = co_await fetch_queue_counts(conn);
        std::sort(queues.begin(), queues.end(),
                  [](const auto& a, const auto& b) { return a.queue < b.queue; });
        if (!as_json) {
            print_table(queues);
            co_return exit_ok;
        }
        json::array out;
        for (const auto& q : queues) {
            json::object o;
            put_bytes(o, "queue", q.queue);
            o["ready"] = count_json(q.ready);
            o["delayed"] = count_json(q.delayed);
            o["leased"] = count_json(q.leased);
            o["dead"] = count_json(q.dead);
            out.push_back(std::move(o));
        }
        write_line(json::serialize(out));
        co_return exit_ok;
    });
}

}  // namespace

const command_def result_command{"result", result_usage, result_specs, run_result};
const command_def task_command{"task", task_usage, task_specs, run_task};
const command_def queues_command{"queues", queues_usage, queues_specs, run_queues};

}  // namespace conveyor::cli

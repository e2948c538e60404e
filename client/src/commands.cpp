#include <conveyor/client/commands.hpp>
#include <conveyor/client/error.hpp>
#include <conveyor/protocol/resp_writer.hpp>

#include <boost/system/errc.hpp>

#include <charconv>

namespace conveyor::client {

// A request is an array of bulk strings: the reply encoder writes exactly that shape.
void encode_request(std::string& out, std::span<const std::string> args) {
    protocol::resp_writer writer(out, protocol::resp_version::resp2);
    writer.array_header(args.size());
    for (const auto& a : args) writer.bulk(a);
}

namespace {

[[noreturn]] void invalid_argument(const std::string& what) {
    throw error(boost::system::errc::make_error_code(boost::system::errc::invalid_argument), what);
}

[[noreturn]] void unexpected(const reply& r, const char* expected) {
    throw_error(errc::unexpected_reply, std::string("expected ") + expected +
                                            " in the reply, got type " +
                                            std::to_string(static_cast<int>(r.type)));
}

void add(command_args& args, std::string_view option, std::int64_t value) {
    args.emplace_back(option);
    args.push_back(std::to_string(value));
}

bool is_string(const reply& r) {
    return r.type == protocol::resp_type::bulk_string ||
           r.type == protocol::resp_type::simple_string || r.type == protocol::resp_type::verbatim;
}

bool is_aggregate(const reply& r) {
    return r.type == protocol::resp_type::array || r.type == protocol::resp_type::map ||
           r.type == protocol::resp_type::set;
}

std::int64_t to_integer(const reply& r) {
    if (r.type == protocol::resp_type::integer || r.type == protocol::resp_type::boolean)
        return r.integer;
    if (is_string(r)) {  // tolerated: a number sent as a string
        std::int64_t v = 0;
        auto [end, ec] = std::from_chars(r.text.data(), r.text.data() + r.text.size(), v);
        if (ec == std::errc{} && end == r.text.data() + r.text.size()) return v;
    }
    unexpected(r, "an integer");
}

std::string to_string_value(const reply& r) {
    if (!is_string(r)) unexpected(r, "a string");
    return r.text;
}

std::optional<std::string> to_optional_string(const reply& r) {
    if (r.type == protocol::resp_type::null) return std::nullopt;
    return to_string_value(r);
}

// A RESP2 flat array or RESP3 map of field/value pairs: calls f(field, value) for each.
template <class F>
void for_each_field(const reply& r, F&& f) {
    if (!is_aggregate(r) || r.elements.size() % 2 != 0) unexpected(r, "field/value pairs");
    for (std::size_t i = 0; i < r.elements.size(); i += 2)
        f(to_string_value(r.elements[i]), r.elements[i + 1]);
}

leased_task to_leased_task(const reply& r) {
    leased_task t;
    for_each_field(r, [&](const std::string& field, const reply& v) {
        if (field == "id")
            t.id = to_string_value(v);
        else if (field == "lease")
            t.lease = to_string_value(v);
        else if (field == "queue")
            t.queue = to_string_value(v);
        else if (field == "name")
            t.name = to_string_value(v);
        else if (field == "payload")
            t.payload = to_string_value(v);
        else if (field == "attempt")
            t.attempt = to_integer(v);
        else if (field == "lease_ms")
            t.lease_ms = to_integer(v);
        else if (field == "timeout_ms")
            t.timeout_ms = to_integer(v);
        else if (field == "priority")
            t.priority = to_integer(v);
        // Fields added by a newer broker are skipped.
    });
    if (t.id.empty() || t.lease.empty()) unexpected(r, "a task with id and lease");
    return t;
}

task_state to_task_state(const reply& r) {
    auto s = to_string_value(r);
    if (s == "queued") return task_state::queued;
    if (s == "delayed") return task_state::delayed;
    if (s == "leased") return task_state::leased;
    if (s == "succeeded") return task_state::succeeded;
    if (s == "dead") return task_state::dead;
    if (s == "cancelled") return task_state::cancelled;
    throw_error(errc::unexpected_reply, "unknown task state '" + s + "'");
}

}  // namespace

namespace request {

/* ENQUEUE <queue> <payload> [ID <id>] [NAME <task-name>] [PRIORITY <0-9>]
           [DELAY <ms> | AT <unix-ms>] [RETRIES <n>] [BACKOFF <base-ms> <max-ms>]
           [TIMEOUT <ms>] [TTL <ms>] */
command_args enqueue(std::string_view queue, std::string_view payload, const enqueue_options& o) {
    if (o.backoff_base_ms.has_value() != o.backoff_max_ms.has_value())
        invalid_argument("ENQUEUE BACKOFF needs both backoff_base_ms and backoff_max_ms");
    command_args args{"ENQUEUE", std::string(queue), std::string(payload)};
    if (o.id) args.insert(args.end(), {"ID", std::string(*o.id)});
    if (o.name) args.insert(args.end(), {"NAME", std::string(*o.name)});
    if (o.priority) add(args, "PRIORITY", *o.priority);
    if (o.delay_ms) add(args, "DELAY", *o.delay_ms);
    if (o.at_unix_ms) add(args, "AT", *o.at_unix_ms);
    if (o.retries) add(args, "RETRIES", *o.retries);
    if (o.backoff_base_ms) {
        add(args, "BACKOFF", *o.backoff_base_ms);
        args.push_back(std::to_string(*o.backoff_max_ms));
    }
    if (o.timeout_ms) add(args, "TIMEOUT", *o.timeout_ms);
    if (o.ttl_ms) add(args, "TTL", *o.ttl_ms);
    return args;
}

/* LEASE [COUNT <n>] [BLOCK <ms>] [FOR <ms>] FROM <queue> [<queue> ...] */
command_args lease(std::span<const std::string> queues, const lease_options& o) {
    if (queues.empty()) invalid_argument("LEASE needs at least one queue");
    command_args args{"LEASE"};
    if (o.count != 1) add(args, "COUNT", o.count);
    if (o.block_ms) add(args, "BLOCK", *o.block_ms);
    if (o.for_ms) add(args, "FOR", *o.for_ms);
    args.emplace_back("FROM");
    args.insert(args.end(), queues.begin(), queues.end());
    return args;
}

/* ACK <lease> [<result>] */
command_args ack(std::string_view lease, std::optional<std::string_view> result) {
    command_args args{"ACK", std::string(lease)};
    if (result) args.emplace_back(*result);
    return args;
}

/* FAIL <lease> <error> [RETRY <ms> | NORETRY] */
command_args fail(std::string_view lease, std::string_view error, const fail_options& o) {
    if (o.retry_ms && o.noretry) invalid_argument("FAIL takes RETRY or NORETRY, not both");
    command_args args{"FAIL", std::string(lease), std::string(error)};
    if (o.retry_ms) add(args, "RETRY", *o.retry_ms);
    if (o.noretry) args.emplace_back("NORETRY");
    return args;
}

/* RELEASE <lease> [DELAY <ms>] */
command_args release(std::string_view lease, std::optional<std::int64_t> delay_ms) {
    command_args args{"RELEASE", std::string(lease)};
    if (delay_ms) add(args, "DELAY", *delay_ms);
    return args;
}

/* EXTEND <lease> <ms> */
command_args extend(std::string_view lease, std::int64_t ms) {
    return {"EXTEND", std::string(lease), std::to_string(ms)};
}

/* CANCEL <id> */
command_args cancel(std::string_view id) {
    return {"CANCEL", std::string(id)};
}

/* TASK <id> */
command_args task(std::string_view id) {
    return {"TASK", std::string(id)};
}

/* RESULT <id> [WAIT <ms>] */
command_args result(std::string_view id, std::optional<std::int64_t> wait_ms) {
    command_args args{"RESULT", std::string(id)};
    if (wait_ms) add(args, "WAIT", *wait_ms);
    return args;
}

/* QLEN <queue> */
command_args qlen(std::string_view queue) {
    return {"QLEN", std::string(queue)};
}

/* QUEUES */
command_args queues() {
    return {"QUEUES"};
}

/* DEAD <queue> [COUNT <n>] */
command_args dead(std::string_view queue, std::optional<std::int64_t> count) {
    command_args args{"DEAD", std::string(queue)};
    if (count) add(args, "COUNT", *count);
    return args;
}

/* REQUEUE <id> */
command_args requeue(std::string_view id) {
    return {"REQUEUE", std::string(id)};
}

/* QPURGE <queue> */
command_args qpurge(std::string_view queue) {
    return {"QPURGE", std::string(queue)};
}

/* PING */
command_args ping() {
    return {"PING"};
}

/* AUTH [<user>] <password> */
command_args auth(const std::optional<std::string>& user, std::string_view password) {
    command_args args{"AUTH"};
    if (user) args.push_back(*user);
    args.emplace_back(password);
    return args;
}

}  // namespace request

namespace parse {

void throw_if_error(const reply& r) {
    if (r.is_error()) throw server_error(r.text);
}

std::string id(const reply& r) {
    throw_if_error(r);
    return to_string_value(r);
}

std::vector<leased_task> leased_tasks(const reply& r) {
    throw_if_error(r);
    if (r.type == protocol::resp_type::null) return {};
    if (!is_aggregate(r)) unexpected(r, "an array of tasks");
    std::vector<leased_task> tasks;
    tasks.reserve(r.elements.size());
    for (const auto& e : r.elements) tasks.push_back(to_leased_task(e));
    return tasks;
}

namespace {
bool has_code(const reply& r, std::string_view word) {
    return r.is_error() && r.text.starts_with(word) &&
           (r.text.size() == word.size() || r.text[word.size()] == ' ');
}
}  // namespace

lease_outcome lease_reply(const reply& r) {
    if (has_code(r, "LEASELOST")) return lease_outcome::lease_lost;
    if (has_code(r, "CANCELLED")) return lease_outcome::cancelled;
    throw_if_error(r);
    if (to_integer(r) != 1) unexpected(r, ":1");
    return lease_outcome::ok;
}

fail_outcome fail_reply(const reply& r) {
    if (has_code(r, "LEASELOST")) return fail_outcome::lease_lost;
    auto s = id(r);
    if (s == "retry") return fail_outcome::retry;
    if (s == "dead") return fail_outcome::dead;
    throw_error(errc::unexpected_reply, "FAIL replied '" + s + "', expected retry or dead");
}

bool flag(const reply& r) {
    throw_if_error(r);
    return to_integer(r) != 0;
}

std::int64_t integer(const reply& r) {
    throw_if_error(r);
    return to_integer(r);
}

std::vector<std::string> strings(const reply& r) {
    throw_if_error(r);
    if (r.type == protocol::resp_type::null) return {};
    if (!is_aggregate(r)) unexpected(r, "an array of strings");
    std::vector<std::string> out;
    out.reserve(r.elements.size());
    for (const auto& e : r.elements) out.push_back(to_string_value(e));
    return out;
}

std::optional<task_info> task(const reply& r) {
    throw_if_error(r);
    if (r.type == protocol::resp_type::null) return std::nullopt;
    task_info t;
    for_each_field(r, [&](const std::string& field, const reply& v) {
        if (field == "id")
            t.id = to_string_value(v);
        else if (field == "queue")
            t.queue = to_string_value(v);
        else if (field == "name")
            t.name = to_string_value(v);
        else if (field == "state")
            t.state = to_task_state(v);
        else if (field == "attempt")
            t.attempt = to_integer(v);
        else if (field == "priority")
            t.priority = to_integer(v);
        else if (field == "result")
            t.result = to_optional_string(v);
        else if (field == "error")
            t.error = to_optional_string(v);
        else if (field == "created_ms")
            t.created_ms = to_integer(v);
        else if (field == "updated_ms")
            t.updated_ms = to_integer(v);
    });
    return t;
}

task_result result(const reply& r) {
    using status = task_result::status;
    if (has_code(r, "FAILED")) return {status::failed, server_error(r.text).detail()};
    if (has_code(r, "CANCELLED")) return {status::cancelled, server_error(r.text).detail()};
    throw_if_error(r);
    if (r.type == protocol::resp_type::null) return {status::none, {}};
    return {status::succeeded, to_string_value(r)};
}

std::string simple(const reply& r) {
    throw_if_error(r);
    return to_string_value(r);
}

}  // namespace parse

const char* to_string(lease_outcome o) noexcept {
    switch (o) {
        case lease_outcome::ok:
            return "ok";
        case lease_outcome::lease_lost:
            return "lease_lost";
        case lease_outcome::cancelled:
            return "cancelled";
    }
    return "?";
}

const char* to_string(fail_outcome o) noexcept {
    switch (o) {
        case fail_outcome::retry:
            return "retry";
        case fail_outcome::dead:
            return "dead";
        case fail_outcome::lease_lost:
            return "lease_lost";
    }
    return "?";
}

const char* to_string(task_state s) noexcept {
    switch (s) {
        case task_state::queued:
            return "queued";
        case task_state::delayed:
            return "delayed";
        case task_state::leased:
            return "leased";
        case task_state::succeeded:
            return "succeeded";
        case task_state::dead:
            return "dead";
        case task_state::cancelled:
            return "cancelled";
    }
    return "?";
}

const char* to_string(task_result::status s) noexcept {
    switch (s) {
        case task_result::status::succeeded:
            return "succeeded";
        case task_result::status::none:
            return "none";
        case task_result::status::failed:
            return "failed";
        case task_result::status::cancelled:
            return "cancelled";
    }
    return "?";
}

}  // namespace conveyor::client

// Task handlers that run other programs: --exec (one process per task), --pipe (a
// pool of long-lived line-oriented handler processes) and the --handlers routing file.
// Each is a client::task_handler (client/worker_types.hpp): the worker runtime runs it with
// the task's context and obeys its outcome; the handler obeys the context's stop signals
// (soft: SIGTERM to the process group / a cancel line; hard: SIGKILL of the process group).
#pragma once

#include <conveyor/client/worker_types.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace conveyor::worker {

struct exec_options {
    std::string command;                   // run as /bin/sh -c <command>, own process group
    std::size_t max_output = 1024 * 1024;  // stdout kept as the result (more: failure)
    std::size_t stderr_tail = 4096;        // bytes of stderr kept for the error text
};
// One process per task: payload on stdin; CONVEYOR_TASK_ID, CONVEYOR_TASK_NAME,
// CONVEYOR_QUEUE, CONVEYOR_ATTEMPT in the environment; exit 0 = success with stdout as the
// result; any other exit = failure with the tail of stderr as the error.
client::task_handler make_exec_handler(boost::asio::any_io_executor ex, exec_options options);

struct pipe_options {
    std::string command;        // each handler process: /bin/sh -c <command>, own process group
    std::size_t processes = 1;  // one per concurrency slot
};
// A pool of long-lived handler processes speaking one JSON object per line (the protocol is
// in docs/worker.md). The returned handler takes an idle process for each task; a process
// that dies or is killed at the hard limit is replaced and its task failed.
class pipe_pool {
public:
    virtual ~pipe_pool() = default;
    virtual client::task_handler handler() = 0;
    // Ends every process (close stdin, then SIGTERM, then SIGKILL after `grace`).
    virtual boost::asio::awaitable<void> shutdown(std::chrono::milliseconds grace) = 0;
};
std::unique_ptr<pipe_pool> make_pipe_pool(boost::asio::any_io_executor ex, pipe_options options);

// --handlers <file>: routes task NAMEs to handlers (format in conf/handlers.conf).
struct handler_route {
    std::string name;     // a task NAME, or "*" for every other name
    std::string kind;     // "exec", "pipe" or "builtin"
    std::string command;  // the shell command, or the builtin's name (echo, sleep, fail)
    std::optional<std::chrono::milliseconds> timeout;  // default hard limit for tasks without one
    std::size_t concurrency = 0;  // tasks of this route at once; 0: the worker's --concurrency
};
struct handler_file {
    std::vector<handler_route> routes;
};
// Parses the file; throws std::runtime_error naming the file, line and problem.
handler_file load_handler_file(const std::string& path);

}  // namespace conveyor::worker

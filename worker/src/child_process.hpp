// One child process for the process handlers (exec_handler.cpp, pipe_pool.cpp): /bin/sh -c
// <command> in its own process group, with pipes for stdin, stdout and (optionally) stderr,
// waited for without blocking the io thread.
//
// Reaping contract: only this class reaps its child (waitpid on its own pid; nobody in the
// worker may call waitpid(-1)). The leader is reaped only after the rest of its process group
// was SIGKILLed, so a group signal never reaches a recycled pid: while the leader is a zombie
// its pid (and so the group id) cannot be reused.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace conveyor::worker::detail {

struct spawn_options {
    std::string command;                                   // run as /bin/sh -c <command>
    std::vector<std::pair<std::string, std::string>> env;  // set over the inherited environment
    bool capture_stderr = true;  // false: the child writes to the worker's own stderr
};

class child_process {
public:
    // Starts the child. Throws std::system_error when the pipes or the process cannot be made.
    child_process(const boost::asio::any_io_executor& ex, const spawn_options& options);
    // A child still running is SIGKILLed with its group and reaped (a blocking but short wait).
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const noexcept { return pid_; }  // also its process group id
    boost::asio::posix::stream_descriptor& stdin_pipe() noexcept { return stdin_; }
    boost::asio::posix::stream_descriptor& stdout_pipe() noexcept { return stdout_; }
    boost::asio::posix::stream_descriptor& stderr_pipe() noexcept { return stderr_; }

    // Sends `sig` to the whole process group. A no-op once the leader has been reaped.
    void signal_group(int sig) noexcept;
    // Completes when the leader has exited; then SIGKILLs what is left of its group, reaps the
    // leader and returns its wait status. Any number of callers may wait at once.
    boost::asio::awaitable<int> wait();
    // Without waiting: reaps the leader (as wait() does) if it has exited. True once reaped.
    bool poll_exit();
    bool reaped() const noexcept { return status_.has_value(); }
    std::optional<int> status() const noexcept { return status_; }
    // Closes the worker's ends of the pipes (pending reads and writes end with an error).
    void close_pipes() noexcept;

private:
    bool leader_exited() const noexcept;  // without reaping
    void reap() noexcept;

    pid_t pid_ = -1;
    std::optional<int> status_;
    boost::asio::posix::stream_descriptor stdin_;
    boost::asio::posix::stream_descriptor stdout_;
    boost::asio::posix::stream_descriptor stderr_;
    std::optional<boost::asio::posix::stream_descriptor> pidfd_;  // empty: poll on a timer
};

// "exited with status 3", "killed by signal 9 (SIGKILL)".
std::string describe_wait_status(int status);

// The worker must survive writing to a handler that closed its stdin: SIGPIPE is ignored in
// the worker process (children get it back at its default). Idempotent.
void ignore_sigpipe_once();

}  // namespace conveyor::worker::detail

#include "child_process.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>

extern char** environ;

namespace conveyor::worker::detail {
namespace {

[[noreturn]] void throw_errno(int err, const char* what) {
    throw std::system_error(err, std::generic_category(), what);
}

// RAII for the two ends of a pipe until they are handed over.
struct pipe_fds {
    int read = -1;
    int write = -1;
    pipe_fds() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
        read = fds[0];
        write = fds[1];
    }
    ~pipe_fds() {
        if (read >= 0) ::close(read);
        if (write >= 0) ::close(write);
    }
    int release_read() { return std::exchange(read, -1); }
    int release_write() { return std::exchange(write, -1); }
};

// The inherited environment with `overrides` set on top.
std::vector<std::string> build_environment(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view entry(*e);
        bool overridden = false;
        for (const auto& [key, value] : overrides) {
            if (entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=') {
                overridden = true;
                break;
            }
        }
        if (!overridden) env.emplace_back(entry);
    }
    for (const auto& [key, value] : overrides) env.push_back(key + "=" + value);
    return env;
}

int open_pidfd(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

class spawn_attributes {
public:
    spawn_attributes() {
        ::posix_spawnattr_init(&attr_);
        // Own process group; no blocked signals; every signal at its default (SIGPIPE is
        // ignored in the worker and an ignored disposition would otherwise be inherited).
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        ::posix_spawnattr_setpgroup(&attr_, 0);
        ::posix_spawnattr_setsigmask(&attr_, &none);
        ::posix_spawnattr_setsigdefault(&attr_, &all);
        ::posix_spawnattr_setflags(
            &attr_, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    }
    ~spawn_attributes() { ::posix_spawnattr_destroy(&attr_); }
    const posix_spawnattr_t* get() const { return &attr_; }

private:
    posix_spawnattr_t attr_;
};

class file_actions {
public:
    file_actions() { ::posix_spawn_file_actions_init(&actions_); }
    ~file_actions() { ::posix_spawn_file_actions_destroy(&actions_); }
    void dup2(int from, int to) { ::posix_spawn_file_actions_adddup2(&actions_, from, to); }
    // The worker's sockets are not close-on-exec (Asio does not set it): close them all.
    void close_from(int fd) { ::posix_spawn_file_actions_addclosefrom_np(&actions_, fd); }
    const posix_spawn_file_actions_t* get() const { return &actions_; }

private:
    posix_spawn_file_actions_t actions_;
};

}  // namespace

child_process::child_process(const boost::asio::any_io_executor& ex, const spawn_options& options)
    : stdin_(ex), stdout_(ex), stderr_(ex) {
    ignore_sigpipe_once();
    pipe_fds in, out;
    std::optional<pipe_fds> err;
    if (options.capture_stderr) err.emplace();

    file_actions actions;
    actions.dup2(in.read, STDIN_FILENO);
    actions.dup2(out.write, STDOUT_FILENO);
    if (err) actions.dup2(err->write, STDERR_FILENO);
    actions.close_from(3);
    spawn_attributes attributes;

    std::vector<std::string> env = build_environment(options.env);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string sh = "sh", dash_c = "-c", command = options.command;
    std::array<char*, 4> argv{sh.data(), dash_c.data(), command.data(), nullptr};

    pid_t pid = -1;
    int rc =
        ::posix_spawn(&pid, "/bin/sh", actions.get(), attributes.get(), argv.data(), envp.data());
    if (rc != 0) throw_errno(rc, "posix_spawn /bin/sh");
    pid_ = pid;

    stdin_.assign(in.release_write());
    stdout_.assign(out.release_read());
    if (err) stderr_.assign(err->release_read());
    int pidfd = open_pidfd(pid_);
    if (pidfd >= 0) {
        ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
        pidfd_.emplace(ex, pidfd);
    }
}

child_process::~child_process() {
    if (!status_) {
        signal_group(SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
}

void child_process::signal_group(int sig) noexcept {
    if (!status_ && pid_ > 0) ::kill(-pid_, sig);
}

bool child_process::leader_exited() const noexcept {
    siginfo_t info{};
    // WNOWAIT: the leader stays a zombie (holding its group id) until reap().
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
        return errno == ECHILD;  // someone else reaped it: nothing left to wait for
    }
    return info.si_pid == pid_;
}

void child_process::reap() noexcept {
    if (status_) return;
    ::kill(-pid_, SIGKILL);  // the rest of the group: a task leaves nothing behind
    int status = 0;
    pid_t r;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    status_ = r == pid_ ? status : (W_EXITCODE(255, 0));
    if (pidfd_) {
        boost::system::error_code ignored;
        pidfd_->close(ignored);
    }
}

bool child_process::poll_exit() {
    if (!status_ && leader_exited()) reap();
    return status_.has_value();
}

boost::asio::awaitable<int> child_process::wait() {
    using boost::asio::as_tuple;
    using boost::asio::use_awaitable;
    if (pidfd_ && pidfd_->is_open()) {
        // A pidfd turns readable when the process exits.
        while (!status_ && !leader_exited()) {
            co_await pidfd_->async_wait(boost::asio::posix::descriptor_base::wait_read,
                                        as_tuple(use_awaitable));
            if (!pidfd_->is_open()) break;  // another waiter reaped it
        }
    } else {
        // No pidfd (Linux before 5.3, or seccomp): poll, backing off to 50 ms.
        boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
        auto delay = std::chrono::milliseconds(1);
        while (!status_ && !leader_exited()) {
            timer.expires_after(delay);
            co_await timer.async_wait(use_awaitable);
            delay = std::min(delay * 2, std::chrono::milliseconds(50));
        }
    }
    reap();
    co_return *status_;
}

void child_process::close_pipes() noexcept {
    boost::system::error_code ignored;
    if (stdin_.is_open()) stdin_.close(ignored);
    if (stdout_.is_open()) stdout_.close(ignored);
    if (stderr_.is_open()) stderr_.close(ignored);
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char* abbrev = ::sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) +
               (abbrev ? std::string(" (SIG") + abbrev + ")" : std::string());
    }
    return "ended with wait status " + std::to_string(status);
}

void ignore_sigpipe_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction current {};
        if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
            ::signal(SIGPIPE, SIG_IGN);
        }
    });
}

}  // namespace conveyor::worker::detail

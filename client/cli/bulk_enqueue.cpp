#include "bulk_enqueue.hpp"

#include "progress_bar.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace conveyor::cli {

namespace asio = boost::asio;
namespace cc = conveyor::client;

namespace {

// Lines sent before waiting for their replies. One batch is one or a few socket writes;
// 1000 keeps the pipe full while a batch's ids (printed in order) stay a small vector.
constexpr std::size_t batch_size = 1000;

// Lines of a file or stdin, binary-safe (getline(3) keeps NUL bytes).
class line_reader {
public:
    explicit line_reader(const std::string& path) : path_(path) {
        if (path == "-") {
            file_ = stdin;
        } else {
            file_ = std::fopen(path.c_str(), "rb");
            if (!file_) throw cli_failure("cannot open '" + path + "': " + std::strerror(errno));
        }
        struct stat st {};
        if (::fstat(::fileno(file_), &st) == 0 && S_ISREG(st.st_mode)) {
            long offset = std::ftell(file_);
            total_ = static_cast<std::uint64_t>(st.st_size - (offset > 0 ? offset : 0));
        }
    }
    line_reader(const line_reader&) = delete;
    line_reader& operator=(const line_reader&) = delete;
    ~line_reader() {
        std::free(buffer_);
        if (file_ && file_ != stdin) std::fclose(file_);
    }

    // The next line without its newline; false at the end. Throws cli_failure on an error.
    bool next(std::string& line) {
        errno = 0;
        ssize_t n = ::getline(&buffer_, &capacity_, file_);
        if (n < 0) {
            if (std::ferror(file_))
                throw cli_failure("cannot read '" + path_ + "': " + std::strerror(errno));
            return false;
        }
        bytes_ += static_cast<std::uint64_t>(n);
        if (n > 0 && buffer_[n - 1] == '\n') --n;
        line.assign(buffer_, static_cast<std::size_t>(n));
        return true;
    }

    std::uint64_t bytes_read() const noexcept { return bytes_; }
    std::optional<std::uint64_t> total_bytes() const noexcept { return total_; }

private:
    std::string path_;
    std::FILE* file_ = nullptr;
    char* buffer_ = nullptr;
    std::size_t capacity_ = 0;
    std::uint64_t bytes_ = 0;
    std::optional<std::uint64_t> total_;
};

// Completes wait() once count_down() was called `count` times. One executor, one waiter.
class countdown {
public:
    countdown(asio::any_io_executor ex, std::size_t count)
        : timer_(ex, asio::steady_timer::time_point::max()), left_(count) {}

    void count_down() {
        if (--left_ == 0) timer_.cancel();
    }
    cc::awaitable<void> wait() {
        while (left_ != 0) co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }

private:
    asio::steady_timer timer_;
    std::size_t left_;
};

// One line's ENQUEUE: its id, or the error reply that refused it. I/O failures throw.
struct line_outcome {
    std::string id;
    std::string refused;  // the error reply; empty when enqueued
};

cc::awaitable<void> enqueue_line(const cli_context& ctx, cc::connection& conn,
                                 const std::string& queue, std::string payload,
                                 cc::enqueue_options options, line_outcome& out) {
    try {
        out.id = co_await conn.enqueue(queue, payload, options);
    } catch (const cc::server_error& e) {
        out.refused = explain_error(ctx, e);
    }
}

class bulk_run {
public:
    bulk_run(const cli_context& ctx, const bulk_job& job, line_reader& reader)
        : ctx_(ctx),
          job_(job),
          reader_(reader),
          progress_(::isatty(STDERR_FILENO) == 1, reader.total_bytes()) {}

    cc::awaitable<int> run(cc::connection& conn) {
        std::vector<std::string> lines;
        for (;;) {
            lines.clear();
            std::string line;
            while (lines.size() < batch_size && reader_.next(line)) lines.push_back(line);
            if (lines.empty()) break;
            std::vector<line_outcome> outcomes(lines.size());
            std::exception_ptr failure = co_await send_batch(conn, lines, outcomes);
            const bool all_taken = take_outcomes(outcomes);
            if (failure || !all_taken) progress_.finish(enqueued_, reader_.bytes_read());
            if (failure) {
                // Lines sent before the connection failed may have been enqueued without
                // their replies arriving: the count is a lower bound.
                report(ctx_, "enqueued " + std::to_string(enqueued_) + " tasks before the failure" +
                                 (refusal_.empty() ? "" : " (" + refusal_ + ")"));
                std::rethrow_exception(failure);
            }
            if (!all_taken) {
                report(ctx_, "enqueued " + std::to_string(enqueued_) +
                                 " tasks, then stopped: " + refusal_);
                co_return exit_failure;
            }
            line_number_ += lines.size();
            progress_.update(enqueued_, reader_.bytes_read());
        }
        progress_.finish(enqueued_, reader_.bytes_read());
        std::cout.flush();
        std::cerr << summary() << std::endl;
        co_return exit_ok;
    }

private:
    // "enqueued 10000 tasks in 0.06 s (171,709/s)"
    std::string summary() const {
        char seconds_text[32];
        double seconds = progress_.elapsed_seconds();
        std::snprintf(seconds_text, sizeof seconds_text, " in %.2f s", seconds);
        std::string out = "enqueued " + std::to_string(enqueued_) + " tasks" + seconds_text;
        if (seconds > 0)
            out += " (" + with_thousands(std::uint64_t(double(enqueued_) / seconds)) + "/s)";
        return out;
    }

    // Every line of the batch goes out at once (the connection coalesces the writes); this
    // returns when every call ended, so no call outlives the vectors it writes to, with the
    // first I/O failure if any.
    cc::awaitable<std::exception_ptr> send_batch(cc::connection& conn,
                                                 const std::vector<std::string>& lines,
                                                 std::vector<line_outcome>& outcomes) {
        auto ex = co_await asio::this_coro::executor;
        countdown done(ex, lines.size());
        std::exception_ptr failure;
        for (std::size_t i = 0; i < lines.size(); ++i) {
            asio::co_spawn(
                ex, enqueue_line(ctx_, conn, job_.queue, lines[i], job_.options, outcomes[i]),
                [&](std::exception_ptr e) {
                    if (e && !failure) failure = e;
                    done.count_down();
                });
        }
        co_await done.wait();
        co_return failure;
    }

    // Counts and prints the ids the batch got; false if a line was refused or got no reply
    // (refusal_ names the first refused line).
    bool take_outcomes(const std::vector<line_outcome>& outcomes) {
        bool ok = true;
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            if (outcomes[i].id.empty()) {
                ok = false;
                if (outcomes[i].refused.empty()) continue;  // no reply: the connection failed
                if (refusal_.empty())
                    refusal_ =
                        "line " + std::to_string(line_number_ + i + 1) + ": " + outcomes[i].refused;
                continue;
            }
            ++enqueued_;
            if (job_.print_ids) write_line(outcomes[i].id);
        }
        return ok;
    }

    const cli_context& ctx_;
    const bulk_job& job_;
    line_reader& reader_;
    progress_bar progress_;
    std::uint64_t enqueued_ = 0;
    std::uint64_t line_number_ = 0;  // lines of the batches before this one
    std::string refusal_;
};

}  // namespace

int run_bulk_enqueue(const cli_context& ctx, const bulk_job& job) {
    line_reader reader(job.path);  // before connecting: a missing file is not worth a socket
    return run_client(ctx, [&](cc::connection& conn) -> cc::awaitable<int> {
        bulk_run run(ctx, job, reader);
        co_return co_await run.run(conn);
    });
}

}  // namespace conveyor::cli

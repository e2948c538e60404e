#include "cli_run.hpp"

#include <conveyor/client/refusal.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>

#include <unistd.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>

namespace conveyor::cli {

namespace asio = boost::asio;
namespace cc = conveyor::client;

namespace {

// connection::connect, with every way it can fail said the same way: "cannot connect to
// <host:port>: <reason>".
cc::awaitable<cc::connection> connect_or_explain(cc::server_url url, cc::connect_options options) {
    const std::string where = cc::to_display_string(url);
    std::string reason;
    try {
        co_return co_await cc::connection::connect(url, options);
    } catch (const cc::server_error& e) {  // refused on sight (DENIED), or the AUTH refused
        reason = cc::explain_refusal(e);
    } catch (const cc::error& e) {
        if (e.code() == asio::error::timed_out)
            reason = "timed out after " + std::to_string(options.connect_timeout.count()) + " ms";
        else
            throw cli_failure(e.what());  // already "cannot connect to <where>: <reason>"
    } catch (const boost::system::system_error& e) {
        reason = e.code().message();
    }
    throw cli_failure("cannot connect to " + where + ": " + reason);
}

cc::awaitable<int> connect_and_run(cc::server_url url, cc::connect_options options,
                                   client_body body) {
    auto conn = co_await connect_or_explain(std::move(url), std::move(options));
    int status = co_await body(conn);
    conn.close();
    co_return status;
}

}  // namespace

std::string explain_error(const cli_context& ctx, const cc::server_error& e) {
    if (!cc::is_permanent(cc::classify_refusal(e))) return e.what();
    return cc::to_display_string(ctx.url) + ": " + cc::explain_refusal(e);
}

void report(const cli_context& ctx, std::string_view message) {
    std::cerr << "conveyor " << ctx.command << ": " << message << std::endl;
}

int run_client(const cli_context& ctx, client_body body) {
    asio::io_context io;
    std::optional<int> status;
    std::exception_ptr failure;
    cc::connect_options options{.connect_timeout = ctx.connect_timeout, .tls = &ctx.tls};
    asio::co_spawn(io, connect_and_run(ctx.url, std::move(options), std::move(body)),
                   [&](std::exception_ptr e, int s) {
                       failure = e;
                       if (!e) status = s;
                   });
    try {
        io.run();
        if (failure) std::rethrow_exception(failure);
    } catch (const usage_error&) {
        throw;  // cli_main reports it with exit status 2
    } catch (const cc::server_error& e) {
        std::cout.flush();
        report(ctx, explain_error(ctx, e));
        return exit_failure;
    } catch (const std::exception& e) {
        std::cout.flush();
        report(ctx, e.what());
        return exit_failure;
    }
    std::cout.flush();
    if (!std::cout) {
        report(ctx, std::string("cannot write to stdout: ") + std::strerror(errno));
        return exit_failure;
    }
    return status.value_or(exit_failure);
}

void write_value(std::string_view data) {
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (::isatty(STDOUT_FILENO) && (data.empty() || data.back() != '\n')) std::cout << '\n';
}

std::optional<int> report_result(const cli_context& ctx, std::string_view id,
                                 const client::task_result& r) {
    switch (r.state) {
        case client::task_result::status::succeeded:
            write_value(r.value);
            return exit_ok;
        case client::task_result::status::failed:
            report(ctx, "task " + std::string(id) + " failed: " + r.value);
            return exit_failure;
        case client::task_result::status::cancelled:
            report(ctx, "task " + std::string(id) + " was cancelled");
            return exit_failure;
        case client::task_result::status::none:
            break;
    }
    return std::nullopt;
}

void write_line(std::string_view line) {
    std::cout.write(line.data(), static_cast<std::streamsize>(line.size()));
    std::cout << '\n';
}

std::string read_all_stdin() {
    std::string out;
    char buffer[65536];
    for (;;) {
        ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
        if (n > 0) {
            out.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
            return out;
        } else if (errno != EINTR) {
            throw cli_failure(std::string("cannot read stdin: ") + std::strerror(errno));
        }
    }
}

}  // namespace conveyor::cli

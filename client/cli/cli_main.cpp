#include "cli_main.hpp"

#include <algorithm>

#include "cli_commands.hpp"

#include <conveyor/client/error.hpp>

#include <array>
#include <iostream>
#include <vector>

namespace conveyor::cli {

namespace {

const std::array<const command_def*, 7> commands{&enqueue_command, &result_command, &task_command,
                                                 &queues_command,  &cancel_command, &dead_command,
                                                 &requeue_command};

const command_def* find_command(std::string_view name) {
    for (const command_def* c : commands)
        if (c->name == name) return c;
    return nullptr;
}

cli_context make_context(std::string_view command, const parsed_args& args) {
    cli_context ctx{std::string(command), {}, std::chrono::milliseconds(5000)};
    if (auto t = args.get("connect-timeout")) {
        // A bare number is seconds here, as for `conveyor worker --connect-timeout`.
        auto ms = parse_duration_ms("connect-timeout", *t, protocol::bare_unit::seconds);
        if (ms == 0) throw usage_error("--connect-timeout must be more than 0");
        ctx.connect_timeout = std::chrono::milliseconds(ms);
    }
    auto connect = args.get("connect");
    try {
        ctx.url =
            client::url_or_env(connect ? std::optional<std::string_view>(*connect) : std::nullopt);
    } catch (const boost::system::system_error& e) {
        throw usage_error(std::string(connect ? "--connect: " : "CONVEYOR_URL: ") + e.what());
    }
    try {
        ctx.url = client::with_credentials(
            std::move(ctx.url), {.user = args.get("user"), .password = args.get("password")});
    } catch (const boost::system::system_error& e) {
        throw usage_error(e.what());
    }
    client::tls_flags tls{.tls = args.has("tls"),
                          .ca = args.get("tls-ca"),
                          .cert = args.get("tls-cert"),
                          .key = args.get("tls-key"),
                          .server_name = args.get("tls-server-name")};
    try {
        ctx.tls = client::tls_from_flags(ctx.url, tls);
    } catch (const boost::system::system_error& e) {
        throw usage_error(e.what());
    }
    return ctx;
}

}  // namespace

bool is_cli_command(std::string_view command) {
    return find_command(command) != nullptr;
}

int cli_main(std::string_view command, const std::vector<std::string>& args) {
    const command_def* def = find_command(command);
    if (!def) {
        std::cerr << "conveyor: unknown command '" << command << "'\n";
        return exit_usage;
    }
    try {
        std::vector<option_spec> specs(std::begin(common_specs), std::end(common_specs));
        specs.insert(specs.end(), def->options.begin(), def->options.end());
        parsed_args parsed = parse_args(args, specs);
        if (parsed.has("help")) {
            std::cout << def->usage << "\nCommon options:\n" << common_help;
            return exit_ok;
        }
        return def->run(make_context(command, parsed), parsed);
    } catch (const usage_error& e) {
        std::cerr << "conveyor " << command << ": " << e.what() << "\n"
                  << "Run 'conveyor " << command << " --help' for usage.\n";
        return exit_usage;
    } catch (const cli_failure& e) {  // before connecting: stdin, a --lines file
        std::cerr << "conveyor " << command << ": " << e.what() << "\n";
        return exit_failure;
    }
}

void expect_positionals(const parsed_args& args, std::size_t count, std::string_view syntax) {
    if (args.positional.size() == count) return;
    std::string what = args.positional.size() < count ? "missing arguments" : "too many arguments";
    if (args.positional.size() > count) what += " (unexpected '" + args.positional[count] + "')";
    throw usage_error(what + "; expected " + std::string(syntax));
}

}  // namespace conveyor::cli

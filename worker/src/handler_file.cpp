// --handlers <file>: one route per line (format and examples in conf/handlers.conf):
//
//   <name|*> <exec|pipe|builtin> [timeout=<ms>] [concurrency=<n>] -- <command or builtin>
//
// '#' starts a comment line; blank lines are ignored. Errors name the file and the line.
#include <conveyor/protocol/duration.hpp>
#include <conveyor/worker/process_handlers.hpp>

#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace conveyor::worker {
namespace {

constexpr std::string_view separator = " -- ";
const std::set<std::string, std::less<>> builtin_names{"echo", "sleep", "fail"};

std::string_view trim(std::string_view s) {
    auto begin = s.find_first_not_of(" \t\r");
    if (begin == std::string_view::npos) return {};
    auto end = s.find_last_not_of(" \t\r");
    return s.substr(begin, end - begin + 1);
}

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < s.size()) {
        i = s.find_first_not_of(" \t", i);
        if (i == std::string_view::npos) break;
        std::size_t end = s.find_first_of(" \t", i);
        if (end == std::string_view::npos) end = s.size();
        words.push_back(s.substr(i, end - i));
        i = end;
    }
    return words;
}

// A positive integer, or nullopt.
std::optional<std::uint64_t> positive(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value == 0) return std::nullopt;
    return value;
}

// One non-comment line; throws std::invalid_argument with the problem.
handler_route parse_route(std::string_view line) {
    // " -- " splits the options from the command; a line ending in " --" has no command.
    std::size_t split = line.find(separator);
    if (split == std::string_view::npos) {
        throw std::invalid_argument(
            "expected '<name|*> <exec|pipe|builtin> [timeout=<ms>] [concurrency=<n>] -- "
            "<command>'");
    }
    std::string_view command = trim(line.substr(split + separator.size()));
    auto words = split_words(line.substr(0, split));
    if (words.size() < 2) throw std::invalid_argument("expected a task name and a handler kind");
    handler_route route;
    route.name = std::string(words[0]);
    route.kind = std::string(words[1]);
    if (route.kind != "exec" && route.kind != "pipe" && route.kind != "builtin") {
        throw std::invalid_argument("unknown handler kind '" + route.kind +
                                    "' (expected exec, pipe or builtin)");
    }
    for (std::size_t i = 2; i < words.size(); ++i) {
        std::string_view word = words[i];
        if (word.starts_with("timeout=")) {
            // A duration as every time flag takes it; a bare number is milliseconds.
            const auto bare = protocol::bare_unit::milliseconds;
            const auto parsed = protocol::parse_duration(word.substr(8), bare);
            if (parsed.error != protocol::duration_errc::ok || parsed.ms == 0) {
                throw std::invalid_argument("timeout= takes a positive duration (" +
                                            protocol::duration_forms(bare) + ")");
            }
            route.timeout = std::chrono::milliseconds(parsed.ms);
        } else if (word.starts_with("concurrency=")) {
            auto n = positive(word.substr(12));
            if (!n || *n > 100000) {
                throw std::invalid_argument("concurrency= takes a number from 1 to 100000");
            }
            route.concurrency = static_cast<std::size_t>(*n);
        } else {
            throw std::invalid_argument("unknown option '" + std::string(word) +
                                        "' (expected timeout=<ms> or concurrency=<n>)");
        }
    }
    if (command.empty()) throw std::invalid_argument("missing the command after ' -- '");
    route.command = std::string(command);
    if (route.kind == "builtin" && !builtin_names.contains(route.command)) {
        throw std::invalid_argument("unknown builtin '" + route.command +
                                    "' (expected echo, sleep or fail)");
    }
    return route;
}

}  // namespace

handler_file load_handler_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error(path + ": cannot open the handlers file");
    handler_file file;
    std::set<std::string, std::less<>> seen;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        std::string_view content = trim(line);
        if (content.empty() || content.front() == '#') continue;
        auto where = [&] { return path + ":" + std::to_string(number) + ": "; };
        handler_route route;
        try {
            // A line may end in " --" plus nothing: give parse_route the separator to find.
            std::string padded(content);
            if (padded.ends_with(" --")) padded += ' ';
            route = parse_route(padded);
        } catch (const std::invalid_argument& e) {
            throw std::runtime_error(where() + e.what());
        }
        if (!seen.insert(route.name).second) {
            throw std::runtime_error(where() + "task name '" + route.name +
                                     "' already has a route");
        }
        file.routes.push_back(std::move(route));
    }
    if (in.bad()) throw std::runtime_error(path + ": read error");
    if (file.routes.empty()) throw std::runtime_error(path + ": no routes (the file is empty)");
    return file;
}

}  // namespace conveyor::worker

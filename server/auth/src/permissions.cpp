#include <conveyor/auth/permissions.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

namespace conveyor::auth {

namespace {

struct verb_entry {
    std::string_view name;
    std::uint8_t bits;
};
constexpr std::array<verb_entry, 5> verb_names{{
    {"enqueue", static_cast<std::uint8_t>(verb::enqueue)},
    {"consume", static_cast<std::uint8_t>(verb::consume)},
    {"inspect", static_cast<std::uint8_t>(verb::inspect)},
    {"admin", static_cast<std::uint8_t>(verb::admin)},
    {"all", all_verbs},
}};

// The table (docs/users.md repeats it); names lower-case, as the command table.
struct command_entry {
    std::string_view name;
    std::optional<verb> needs;  // nullopt: open
};
constexpr std::array<command_entry, 34> commands{{
    {"enqueue", verb::enqueue}, {"lpush", verb::enqueue},  {"rpush", verb::enqueue},
    {"lease", verb::consume},   {"ack", verb::consume},    {"fail", verb::consume},
    {"release", verb::consume}, {"extend", verb::consume}, {"lpop", verb::consume},
    {"rpop", verb::consume},    {"blpop", verb::consume},  {"brpop", verb::consume},
    {"task", verb::inspect},    {"result", verb::inspect}, {"qlen", verb::inspect},
    {"llen", verb::inspect},    {"queues", verb::inspect}, {"dead", verb::inspect},
    {"info", verb::inspect},    {"cancel", verb::admin},   {"requeue", verb::admin},
    {"qpurge", verb::admin},    {"del", verb::admin},      {"config", verb::admin},
    {"debug", verb::admin},     {"ping", std::nullopt},    {"echo", std::nullopt},
    {"quit", std::nullopt},     {"hello", std::nullopt},   {"auth", std::nullopt},
    {"select", std::nullopt},   {"client", std::nullopt},  {"command", std::nullopt},
    {"time", std::nullopt},
}};

const command_entry* find_command(std::string_view name) {
    const auto same = [name](const command_entry& e) {
        return e.name.size() == name.size() &&
               std::equal(e.name.begin(), e.name.end(), name.begin(), [](char a, char b) {
                   return a == std::tolower(static_cast<unsigned char>(b));
               });
    };
    const auto it = std::find_if(commands.begin(), commands.end(), same);
    return it == commands.end() ? nullptr : &*it;
}

bool is_plain_byte(char c) {
    const auto b = static_cast<unsigned char>(c);
    return b > 0x20 && b != 0x7f;
}

}  // namespace

std::string_view verb_name(verb v) {
    for (const auto& e : verb_names) {
        if (e.bits == static_cast<std::uint8_t>(v)) return e.name;
    }
    return "?";
}

std::string rule::to_string() const {
    std::string_view name = "?";
    for (const auto& e : verb_names) {
        if (e.bits == verbs) name = e.name;
    }
    return std::string(name) + ":" + queues.text();
}

std::optional<rule> parse_rule(std::string_view text, std::string& problem) {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) {
        problem = "rule '" + std::string(text) + "' is not <verb>:<queue-glob>";
        return std::nullopt;
    }
    const auto verb_text = text.substr(0, colon);
    const auto glob_text = text.substr(colon + 1);
    const auto it = std::find_if(verb_names.begin(), verb_names.end(),
                                 [&](const verb_entry& e) { return e.name == verb_text; });
    if (it == verb_names.end()) {
        problem = "unknown verb '" + std::string(verb_text) +
                  "' (expected enqueue, consume, inspect, admin or all)";
        return std::nullopt;
    }
    if (glob_text.empty()) {
        problem =
            "rule '" + std::string(text) + "' has an empty queue glob (use * for every queue)";
        return std::nullopt;
    }
    if (glob_text.size() > max_glob_bytes) {
        problem = "queue glob longer than " + std::to_string(max_glob_bytes) + " bytes";
        return std::nullopt;
    }
    if (!std::all_of(glob_text.begin(), glob_text.end(), is_plain_byte)) {
        problem = "queue glob contains whitespace or a control byte (match it with ?)";
        return std::nullopt;
    }
    return rule{it->bits, glob_pattern(glob_text)};
}

bool allowed(const user& u, verb v, std::string_view queue) {
    const auto bit = static_cast<std::uint8_t>(v);
    return std::any_of(u.rules.begin(), u.rules.end(), [&](const rule& r) {
        return (r.verbs & bit) != 0 && r.queues.matches(queue);
    });
}

bool allowed_on_every_queue(const user& u, verb v) {
    const auto bit = static_cast<std::uint8_t>(v);
    return std::any_of(u.rules.begin(), u.rules.end(), [&](const rule& r) {
        return (r.verbs & bit) != 0 && r.queues.matches_everything();
    });
}

command_access access_for_command(std::string_view command) {
    const auto* entry = find_command(command);
    if (entry == nullptr) return command_access::unknown;
    return entry->needs ? command_access::checked : command_access::open;
}

std::optional<verb> command_verb(std::string_view command) {
    const auto* entry = find_command(command);
    return entry == nullptr ? std::nullopt : entry->needs;
}

}  // namespace conveyor::auth

// Users, their rules, and which verb each command needs: the pure half of AUTH/NOPERM.
//
// A rule is `<verb>:<queue-glob>` and allows that verb on the queues the glob matches;
// `all:<glob>` allows every verb there. A user's rights are the union of its rules; a user
// with no rules can do nothing (AUTH succeeds, every checked command gets NOPERM).
#pragma once

#include <conveyor/auth/glob.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::auth {

enum class verb : std::uint8_t {
    enqueue = 1,  // ENQUEUE, LPUSH, RPUSH
    consume = 2,  // LEASE, ACK, FAIL, RELEASE, EXTEND, LPOP, RPOP, BLPOP, BRPOP
    inspect = 4,  // TASK, RESULT, QLEN, LLEN, QUEUES, DEAD, INFO
    admin = 8,    // CANCEL, REQUEUE, QPURGE, DEL, CONFIG, DEBUG
};
inline constexpr std::uint8_t all_verbs = 1 | 2 | 4 | 8;

std::string_view verb_name(verb v);

struct rule {
    std::uint8_t verbs = 0;  // a set of `verb` bits; all_verbs for `all:`
    glob_pattern queues{""};

    // "enqueue:emails.*" as written in the file and on the command line.
    std::string to_string() const;
};

// Parses `<verb>:<glob>` (verb one of enqueue, consume, inspect, admin, all; glob non-empty,
// no whitespace or control bytes, at most max_glob_bytes). On failure returns nullopt and
// sets `problem` to a sentence naming what is wrong.
inline constexpr std::size_t max_glob_bytes = 512;
std::optional<rule> parse_rule(std::string_view text, std::string& problem);

struct user {
    std::string name;
    std::string password_hash;  // see password.hpp
    std::vector<rule> rules;
};

// True when one of the user's rules grants `v` on `queue`.
bool allowed(const user& u, verb v, std::string_view queue);
// For commands that name no queue (QUEUES, INFO, CONFIG): true when one rule grants `v` with
// a glob that matches every queue (`*`), since the reply may cover any queue.
bool allowed_on_every_queue(const user& u, verb v);

// What a command needs once the connection is authenticated (case-insensitive name).
enum class command_access {
    open,     // connection and harmless server commands: PING ECHO QUIT HELLO AUTH SELECT
              // CLIENT COMMAND TIME
    checked,  // needs `required_verb` on its queue(s); see command_verb
    unknown,  // not in the table: the server should refuse it (deny by default)
};
command_access access_for_command(std::string_view command);
// The verb a checked command needs; nullopt for open and unknown commands.
std::optional<verb> command_verb(std::string_view command);

}  // namespace conveyor::auth

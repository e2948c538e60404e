// The users file (`--users <file>`; conf/users.example documents it for people):
//
//     # comment                          (a '#' first on the line, after optional blanks)
//     user <name> <hash> [allow <verb>:<queue-glob> ...]
//
// Tokens are separated by spaces or tabs; names and globs hold no whitespace or control
// bytes. <hash> is a password.hpp hash, never a plain password. A name appears once.
//
// Limits, so a wrong path (a log, a binary) fails fast with a clear line number instead of
// filling memory: a line is at most 64 KiB (enough for 100 rules of a 512-byte glob), a user
// has at most 1,024 rules, a file holds at most 100,000 users and 64 MiB, a name is 1..128
// bytes.
#pragma once

#include <conveyor/auth/permissions.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace conveyor::auth {

inline constexpr std::size_t max_users_line_bytes = 64 * 1024;
inline constexpr std::size_t max_rules_per_user = 1024;
inline constexpr std::size_t max_users = 100'000;
inline constexpr std::size_t max_user_name_bytes = 128;
inline constexpr std::size_t max_users_file_bytes = 64 << 20;

// True for 1..128 bytes without whitespace or control bytes, not starting with '#'.
bool is_valid_user_name(std::string_view name);

// A users file as lines: comment and blank lines are kept verbatim so that rewriting the file
// preserves them; user lines are parsed (and written back in canonical form).
class users_document {
public:
    using line = std::variant<std::string, user>;  // verbatim text, or a user

    const user* find(std::string_view name) const;
    // Replaces the user of that name in place, or appends it. Returns true when it replaced.
    bool put(user u);
    // Removes the user's line; comments around it stay. Returns false when there is none.
    bool remove(std::string_view name);
    std::vector<const user*> users() const;

    const std::vector<line>& lines() const { return lines_; }
    void add_line(line l) { lines_.push_back(std::move(l)); }

private:
    std::vector<line> lines_;
};

struct users_parse_result {
    users_document document;
    std::string error;  // "<source>:<line>: <problem>"; empty when the text parsed
    bool ok() const { return error.empty(); }
};

// Parses the whole text; stops at the first bad line. `source` names it in the error.
users_parse_result parse_users(std::string_view text, std::string_view source);

// The file text for `document`: comments verbatim, users as `user <name> <hash> allow ...`.
std::string format_users(const users_document& document);

// Reads and parses `path`. A missing file is an error unless `missing_is_empty`.
users_parse_result read_users_file(const std::string& path, bool missing_is_empty);

// Replaces `path` with `text` atomically: a temporary file beside it (mode 0600, or the old
// file's mode), fsync, rename over the old name, fsync of the directory. A reader sees the
// old file or the new one, never a part. Returns an empty string, or what went wrong.
std::string write_file_atomically(const std::string& path, std::string_view text);

}  // namespace conveyor::auth

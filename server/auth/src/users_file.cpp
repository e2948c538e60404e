#include <conveyor/auth/users_file.hpp>

#include <conveyor/auth/password.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_set>

namespace conveyor::auth {

namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::vector<std::string_view> split_tokens(std::string_view line) {
    std::vector<std::string_view> tokens;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_blank(line[i])) ++i;
        const std::size_t start = i;
        while (i < line.size() && !is_blank(line[i])) ++i;
        if (i > start) tokens.push_back(line.substr(start, i - start));
    }
    return tokens;
}

// Parses one `user ...` line into `out`; returns the problem, or "" when it is fine.
std::string parse_user_line(const std::vector<std::string_view>& tokens, user& out) {
    if (tokens[0] != "user") {
        return "expected 'user <name> <hash> [allow <verb>:<queue-glob> ...]', got '" +
               std::string(tokens[0]) + "'";
    }
    if (tokens.size() < 3) return "a user line needs a name and a password hash";
    if (!is_valid_user_name(tokens[1])) {
        return "bad user name (1 to 128 bytes, no whitespace or control bytes, not starting "
               "with #)";
    }
    if (!is_valid_password_hash(tokens[2])) {
        return "user '" + std::string(tokens[1]) +
               "': the password hash is not pbkdf2-sha256$<iterations>$<salt>$<hash> (make "
               "one with 'conveyor user add')";
    }
    out.name = tokens[1];
    out.password_hash = tokens[2];
    for (std::size_t i = 3; i < tokens.size(); i += 2) {
        if (tokens[i] != "allow") {
            return "expected 'allow <verb>:<queue-glob>', got '" + std::string(tokens[i]) + "'";
        }
        if (i + 1 >= tokens.size()) return "'allow' without a rule";
        if (out.rules.size() == max_rules_per_user) {
            return "more than " + std::to_string(max_rules_per_user) + " rules for one user";
        }
        std::string problem;
        auto r = parse_rule(tokens[i + 1], problem);
        if (!r) return problem;
        out.rules.push_back(std::move(*r));
    }
    return {};
}

std::string errno_text(int error) {
    return std::strerror(error);
}

}  // namespace

bool is_valid_user_name(std::string_view name) {
    if (name.empty() || name.size() > max_user_name_bytes || name[0] == '#') return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        const auto b = static_cast<unsigned char>(c);
        return b > 0x20 && b != 0x7f;
    });
}

const user* users_document::find(std::string_view name) const {
    for (const auto& l : lines_) {
        if (const auto* u = std::get_if<user>(&l); u != nullptr && u->name == name) return u;
    }
    return nullptr;
}

bool users_document::put(user u) {
    for (auto& l : lines_) {
        if (auto* existing = std::get_if<user>(&l);
            existing != nullptr && existing->name == u.name) {
            *existing = std::move(u);
            return true;
        }
    }
    lines_.emplace_back(std::move(u));
    return false;
}

bool users_document::remove(std::string_view name) {
    const auto it = std::find_if(lines_.begin(), lines_.end(), [&](const line& l) {
        const auto* u = std::get_if<user>(&l);
        return u != nullptr && u->name == name;
    });
    if (it == lines_.end()) return false;
    lines_.erase(it);
    return true;
}

std::vector<const user*> users_document::users() const {
    std::vector<const user*> out;
    for (const auto& l : lines_) {
        if (const auto* u = std::get_if<user>(&l)) out.push_back(u);
    }
    return out;
}

users_parse_result parse_users(std::string_view text, std::string_view source) {
    users_parse_result result;
    std::size_t line_number = 0;
    std::unordered_set<std::string> names;  // find() is linear; this keeps parsing linear
    const auto fail = [&](const std::string& problem) {
        result.error = std::string(source) + ":" + std::to_string(line_number) + ": " + problem;
        return result;
    };
    while (!text.empty()) {
        ++line_number;
        const auto newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        if (line.size() > max_users_line_bytes) {
            return fail("line longer than " + std::to_string(max_users_line_bytes) + " bytes");
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.find('\0') != std::string_view::npos) return fail("a NUL byte (not a text file?)");
        const auto tokens = split_tokens(line);
        if (tokens.empty() || tokens[0][0] == '#') {
            result.document.add_line(std::string(line));
            continue;
        }
        user u;
        if (auto problem = parse_user_line(tokens, u); !problem.empty()) return fail(problem);
        if (names.size() == max_users) {
            return fail("more than " + std::to_string(max_users) + " users");
        }
        if (!names.insert(u.name).second) return fail("user '" + u.name + "' is defined twice");
        result.document.add_line(std::move(u));
    }
    return result;
}

std::string format_users(const users_document& document) {
    std::string out;
    for (const auto& l : document.lines()) {
        if (const auto* text = std::get_if<std::string>(&l)) {
            out += *text;
        } else {
            const auto& u = std::get<user>(l);
            out += "user " + u.name + " " + u.password_hash;
            for (const auto& r : u.rules) out += " allow " + r.to_string();
        }
        out += '\n';
    }
    return out;
}

users_parse_result read_users_file(const std::string& path, bool missing_is_empty) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int error = errno;
        users_parse_result result;
        if (error == ENOENT && missing_is_empty) return result;
        result.error = path + ": cannot read the users file: " + errno_text(error);
        return result;
    }
    // Bounded read: a wrong path (a log, a disk image) is refused, not loaded whole.
    std::string text;
    char chunk[64 * 1024];
    while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
        text.append(chunk, static_cast<std::size_t>(in.gcount()));
        if (text.size() > max_users_file_bytes) {
            users_parse_result result;
            result.error = path + ": the users file is larger than " +
                           std::to_string(max_users_file_bytes >> 20) + " MiB";
            return result;
        }
    }
    if (in.bad()) {
        users_parse_result result;
        result.error = path + ": cannot read the users file";
        return result;
    }
    return parse_users(text, path);
}

std::string write_file_atomically(const std::string& path, std::string_view text) {
    mode_t mode = 0600;
    struct stat old_stat {};
    if (::stat(path.c_str(), &old_stat) == 0) mode = old_stat.st_mode & 07777;

    const std::string temp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return "cannot create " + temp + ": " + errno_text(errno);
    const auto fail = [&](const std::string& what) {
        const int error = errno;
        ::close(fd);
        ::unlink(temp.c_str());
        return what + ": " + errno_text(error);
    };
    if (::fchmod(fd, mode) != 0) return fail("cannot set the mode of " + temp);
    std::size_t written = 0;
    while (written < text.size()) {
        const auto n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("cannot write " + temp);
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) return fail("cannot fsync " + temp);
    if (::close(fd) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        return "cannot close " + temp + ": " + errno_text(error);
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(temp.c_str());
        return "cannot rename " + temp + " to " + path + ": " + errno_text(error);
    }
    // The rename is durable once the directory is synced.
    const auto slash = path.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
        ::fsync(dir_fd);
        ::close(dir_fd);
    }
    return {};
}

}  // namespace conveyor::auth

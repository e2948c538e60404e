#include <conveyor/auth/user_main.hpp>

#include <conveyor/auth/password.hpp>
#include <conveyor/auth/users_file.hpp>

#include <iostream>
#include <optional>
#include <stdexcept>

namespace conveyor::auth {

namespace {

constexpr const char* usage = R"(Usage:
  conveyor user add  --users <file> <name> --password <pw>|- [--allow <verb>:<queue-glob> ...]
  conveyor user del  --users <file> <name>
  conveyor user list --users <file>

add   creates the user, or replaces an existing user's password and rules (as htpasswd
      does); the file is created with mode 0600 if missing. `--password -` reads the
      password from the first line of stdin. Without --allow the user can do nothing.
del   removes the user.
list  prints each user's name and rules (never the hashes).

Verbs: enqueue, consume, inspect, admin, or all. Queue globs: * ? [abc] [a-z] [^x] \x.
Example: conveyor user add --users conf/users alice --password - --allow enqueue:emails.*
)";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct user_args {
    std::string action;
    std::optional<std::string> users_file;
    std::optional<std::string> password;
    std::vector<std::string> allow;
    std::vector<std::string> positional;
    bool help = false;
};

user_args parse(const std::vector<std::string>& args) {
    user_args out;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i];
        if (options_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
            if (arg == "-h") {
                out.help = true;
            } else if (out.action.empty()) {
                out.action = arg;
            } else {
                out.positional.push_back(arg);
            }
            continue;
        }
        if (arg == "--") {
            options_done = true;
            continue;
        }
        if (arg == "--help") {
            out.help = true;
            continue;
        }
        std::optional<std::string> value;
        if (const auto eq = arg.find('='); eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
        }
        if (arg != "--users" && arg != "--password" && arg != "--allow") {
            throw usage_error("unknown option '" + arg + "'");
        }
        if (!value) {
            if (i + 1 >= args.size()) throw usage_error(arg + " needs a value");
            value = args[++i];
        }
        if (arg == "--users") out.users_file = *value;
        if (arg == "--password") out.password = *value;
        if (arg == "--allow") out.allow.push_back(*value);
    }
    return out;
}

void expect_names(const user_args& a, std::size_t count) {
    if (a.positional.size() != count) {
        throw usage_error(count == 0 ? "'user " + a.action + "' takes no user name"
                                     : "'user " + a.action + "' takes exactly one user name");
    }
    if (!a.users_file) throw usage_error("--users <file> is required");
    if (a.action != "add" && (a.password || !a.allow.empty())) {
        throw usage_error("--password and --allow belong to 'user add'");
    }
}

int write_back(const std::string& path, const users_document& doc, std::ostream& err) {
    if (auto problem = write_file_atomically(path, format_users(doc)); !problem.empty()) {
        err << "conveyor user: " << problem << "\n";
        return 1;
    }
    return 0;
}

int cmd_add(const user_args& a, std::istream& in, std::ostream& out, std::ostream& err) {
    expect_names(a, 1);
    const std::string& name = a.positional[0];
    if (!is_valid_user_name(name)) {
        throw usage_error("bad user name '" + name +
                          "' (1 to 128 bytes, no whitespace or control bytes, not starting "
                          "with #)");
    }
    if (!a.password) throw usage_error("--password <pw> (or - to read it from stdin) is required");
    std::vector<rule> rules;
    for (const auto& text : a.allow) {
        std::string problem;
        auto r = parse_rule(text, problem);
        if (!r) throw usage_error("--allow: " + problem);
        rules.push_back(std::move(*r));
    }
    if (rules.size() > max_rules_per_user) throw usage_error("too many --allow rules");
    std::string password = *a.password;
    if (password == "-") {
        if (!std::getline(in, password)) password.clear();
        if (!password.empty() && password.back() == '\r') password.pop_back();
    }
    if (password.empty()) throw usage_error("the password is empty");

    auto file = read_users_file(*a.users_file, /*missing_is_empty=*/true);
    if (!file.ok()) {
        err << "conveyor user: " << file.error << "\n";
        return 1;
    }
    const bool replaced = file.document.put(user{name, hash_password(password), std::move(rules)});
    if (const int status = write_back(*a.users_file, file.document, err); status != 0)
        return status;
    out << (replaced ? "updated" : "added") << " user " << name << "\n";
    if (a.allow.empty())
        err << "conveyor user: note: " << name << " has no rules, so it can do nothing\n";
    return 0;
}

int cmd_del(const user_args& a, std::ostream& out, std::ostream& err) {
    expect_names(a, 1);
    auto file = read_users_file(*a.users_file, /*missing_is_empty=*/false);
    if (!file.ok()) {
        err << "conveyor user: " << file.error << "\n";
        return 1;
    }
    if (!file.document.remove(a.positional[0])) {
        err << "conveyor user: no user '" << a.positional[0] << "' in " << *a.users_file << "\n";
        return 1;
    }
    if (const int status = write_back(*a.users_file, file.document, err); status != 0)
        return status;
    out << "deleted user " << a.positional[0] << "\n";
    return 0;
}

int cmd_list(const user_args& a, std::ostream& out, std::ostream& err) {
    expect_names(a, 0);
    const auto file = read_users_file(*a.users_file, /*missing_is_empty=*/false);
    if (!file.ok()) {
        err << "conveyor user: " << file.error << "\n";
        return 1;
    }
    for (const user* u : file.document.users()) {
        out << u->name;
        if (u->rules.empty()) out << " (no rules: can do nothing)";
        for (const auto& r : u->rules) out << " " << r.to_string();
        out << "\n";
    }
    return 0;
}

}  // namespace

int user_main(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err) {
    try {
        const auto a = parse(args);
        if (a.help) {
            out << usage;
            return 0;
        }
        if (a.action == "add") return cmd_add(a, in, out, err);
        if (a.action == "del") return cmd_del(a, out, err);
        if (a.action == "list") return cmd_list(a, out, err);
        throw usage_error(a.action.empty()
                              ? "add, del or list?"
                              : "unknown action '" + a.action + "' (add, del or list)");
    } catch (const usage_error& e) {
        err << "conveyor user: " << e.what() << "\n" << usage;
        return 2;
    } catch (const std::exception& e) {
        err << "conveyor user: " << e.what() << "\n";
        return 1;
    }
}

int user_main(const std::vector<std::string>& args) {
    return user_main(args, std::cin, std::cout, std::cerr);
}

}  // namespace conveyor::auth

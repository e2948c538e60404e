// The config file reader and the "did you mean" of unknown names (config_parts.hpp).
#include "config_parts.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace conveyor::server::config_detail {

file_read read_config_file(const std::string& path) {
    errno = 0;
    std::ifstream in(path);
    if (!in) {
        const int err = errno;
        return {{},
                "cannot open config file '" + path +
                    "': " + (err != 0 ? std::strerror(err) : "cannot be read")};
    }
    file_read out;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
        ++line_no;
        std::istringstream words(line);
        std::string name, value, extra;
        if (!(words >> name) || name[0] == '#') continue;
        if (!(words >> value) || (words >> extra && extra[0] != '#')) {
            out.error = path + ":" + std::to_string(line_no) + ": expected `name value`, got '" +
                        line + "'";
            return out;
        }
        // Names are case-insensitive, as in redis.conf.
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (value == "\"\"") value.clear();
        out.settings.push_back({std::move(name), std::move(value), line_no});
    }
    if (in.bad()) out.error = "cannot read config file '" + path + "': " + std::strerror(errno);
    return out;
}

namespace {

// Edits from a to b, a swap of two neighbouring letters counting as one (optimal string
// alignment distance).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    }
    return d[a.size()][b.size()];
}

}  // namespace

std::vector<std::string> close_names(std::string_view typed,
                                     const std::vector<std::string>& known) {
    // Short names get one edit: two edits turn "port" into "sort" or "bind" into "find".
    const std::size_t max_edits = typed.size() <= 4 ? 1 : 2;
    std::vector<std::pair<std::size_t, std::string>> found;
    for (const auto& name : known) {
        const std::size_t edits = edit_distance(typed, name);
        const bool starts = typed.size() >= 3 && name.size() > typed.size() &&
                            name.compare(0, typed.size(), typed) == 0;
        if (edits <= max_edits || starts) found.emplace_back(starts ? max_edits + 1 : edits, name);
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

std::string did_you_mean(const std::vector<std::string>& names, std::string_view prefix) {
    if (names.empty()) return {};
    std::string out = " (did you mean ";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
        out += "'";
        out += prefix;
        out += names[i] + "'";
    }
    return out + "?)";
}

}  // namespace conveyor::server::config_detail

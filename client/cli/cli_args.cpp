#include "cli_args.hpp"

#include <algorithm>
#include <charconv>

namespace conveyor::cli {

std::optional<std::string> parsed_args::get(std::string_view name) const {
    auto it = values_.find(std::string(name));
    if (it == values_.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
}

const std::vector<std::string>& parsed_args::get_all(std::string_view name) const {
    static const std::vector<std::string> none;
    auto it = values_.find(std::string(name));
    return it == values_.end() ? none : it->second;
}

parsed_args parse_args(const std::vector<std::string>& args, std::span<const option_spec> specs) {
    parsed_args out;
    bool options_ended = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& token = args[i];
        if (options_ended || token == "-" || !token.starts_with("-")) {
            out.positional.push_back(token);
            continue;
        }
        if (token == "--") {
            options_ended = true;
            continue;
        }
        if (token == "-h") {
            out.set("help", {});
            continue;
        }
        if (!token.starts_with("--")) {  // "-5" and the like: a value, not an option
            out.positional.push_back(token);
            continue;
        }
        std::string_view name = std::string_view(token).substr(2);
        std::optional<std::string> inline_value;
        if (auto eq = name.find('='); eq != std::string_view::npos) {
            inline_value = std::string(name.substr(eq + 1));
            name = name.substr(0, eq);
        }
        auto spec = std::find_if(specs.begin(), specs.end(),
                                 [&](const option_spec& s) { return s.name == name; });
        if (spec == specs.end()) throw usage_error("unknown option '--" + std::string(name) + "'");
        std::vector<std::string> values;
        if (inline_value) {
            if (spec->values != 1)
                throw usage_error("option '--" + std::string(name) + "' does not take '=value'");
            values.push_back(*inline_value);
        } else {
            for (int v = 0; v < spec->values; ++v) {
                if (++i >= args.size())
                    throw usage_error("option '--" + std::string(name) + "' needs " +
                                      (spec->values == 1 ? "a value" : "two values"));
                values.push_back(args[i]);
            }
        }
        out.set(name, std::move(values));
    }
    return out;
}

std::int64_t parse_integer(std::string_view option, std::string_view text, std::int64_t min,
                           std::int64_t max) {
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
        throw usage_error("--" + std::string(option) + ": expected an integer from " +
                          std::to_string(min) + " to " + std::to_string(max) + ", got '" +
                          std::string(text) + "'");
    return value;
}

std::int64_t parse_duration_ms(std::string_view option, std::string_view text,
                               protocol::bare_unit bare) {
    const auto parsed = protocol::parse_duration(text, bare);
    if (parsed.error != protocol::duration_errc::ok)
        throw usage_error("--" + std::string(option) + ": " +
                          protocol::duration_error_text(text, parsed, bare));
    return parsed.ms;
}

}  // namespace conveyor::cli

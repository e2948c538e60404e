#include "conveyor/protocol/resp_decoder.hpp"

#include "resp_scan.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace conveyor::protocol {

namespace {

// Redis refuses multibulk counts above this whatever the configured limit.
constexpr std::int64_t redis_max_multibulk_len = std::int64_t{1024} * 1024 * 1024;
// Upper bounds on what a client's declared count or length may make us allocate ahead of the
// bytes themselves: beyond these, vectors and strings grow only as data arrives.
constexpr std::int64_t max_args_reserved = 1024;
constexpr std::int64_t max_bulk_reserved = std::int64_t{64} * 1024;

// Whitespace between inline arguments, as C's isspace() in the "C" locale.
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// Bytes that end an unquoted inline argument (sdssplitargs also stops at NUL; we keep NUL as
// data so that an inline argument is binary-safe up to the separators).
bool ends_word(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10;
}

char unescape(char c) {
    switch (c) {
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'b':
            return '\b';
        case 'a':
            return '\a';
        default:
            return c;  // \\ \" and any other escaped byte stand for themselves
    }
}

// True when a closing quote at line[i - 1] is correctly placed: at the end, or before a space.
bool quote_closes_word(std::string_view line, std::size_t i) {
    return i == line.size() || is_space(line[i]);
}

// Reads a "double-quoted" part; `i` starts after the opening quote and ends after the closing
// one. Returns false when the quote is unterminated or not followed by a space or the end.
bool read_double_quoted(std::string_view line, std::size_t& i, std::string& out) {
    while (i < line.size()) {
        const char c = line[i];
        if (c == '"') {
            ++i;
            return quote_closes_word(line, i);
        }
        if (c == '\\' && i + 3 < line.size() && line[i + 1] == 'x' && is_hex(line[i + 2]) &&
            is_hex(line[i + 3])) {
            out.push_back(static_cast<char>(hex_value(line[i + 2]) * 16 + hex_value(line[i + 3])));
            i += 4;
        } else if (c == '\\' && i + 1 < line.size()) {
            out.push_back(unescape(line[i + 1]));
            i += 2;
        } else {
            out.push_back(c);
            ++i;
        }
    }
    return false;
}

// Reads a 'single-quoted' part, where only \' is an escape. Same contract as above.
bool read_single_quoted(std::string_view line, std::size_t& i, std::string& out) {
    while (i < line.size()) {
        const char c = line[i];
        if (c == '\\' && i + 1 < line.size() && line[i + 1] == '\'') {
            out.push_back('\'');
            i += 2;
        } else if (c == '\'') {
            ++i;
            return quote_closes_word(line, i);
        } else {
            out.push_back(c);
            ++i;
        }
    }
    return false;
}

// Splits an inline command line into arguments with the quoting rules of Redis's
// sdssplitargs. A quote may open inside a word (foo"bar baz" is one argument) and ends it.
// Returns false on unbalanced quotes.
bool split_inline(std::string_view line, std::vector<std::string>& args) {
    std::size_t i = 0;
    while (true) {
        while (i < line.size() && is_space(line[i])) {
            ++i;
        }
        if (i == line.size()) {
            return true;
        }
        std::string& arg = args.emplace_back();
        while (i < line.size() && !ends_word(line[i])) {
            const char c = line[i++];
            if (c == '"' || c == '\'') {
                const bool closed =
                    c == '"' ? read_double_quoted(line, i, arg) : read_single_quoted(line, i, arg);
                if (!closed) {
                    return false;
                }
                break;
            }
            arg.push_back(c);
        }
    }
}

}  // namespace

resp_request_decoder::resp_request_decoder(resp_limits limits) : limits_(limits) {}

void resp_request_decoder::set_limits(const resp_limits& limits) {
    if (state_ == state::idle || state_ == state::failed) {
        limits_ = limits;
        next_limits_.reset();
    } else {
        next_limits_ = limits;
    }
}

void resp_request_decoder::reset() {
    if (next_limits_) {
        limits_ = *next_limits_;
        next_limits_.reset();
    }
    state_ = state::idle;
    request_bytes_ = 0;
    args_left_ = 0;
    bulk_left_ = 0;
    line_scanned_ = 0;
    error_.clear();
}

decode_result resp_request_decoder::fail(std::string message, std::size_t consumed) {
    error_ = std::move(message);
    state_ = state::failed;
    return {decode_status::error, consumed};
}

decode_result resp_request_decoder::feed(std::string_view input, std::vector<std::string>& args) {
    std::size_t pos = 0;
    while (true) {
        step_result result;
        switch (state_) {
            case state::idle:
                if (pos == input.size()) {
                    return {decode_status::need_more, pos};
                }
                if (next_limits_) [[unlikely]] {
                    limits_ = *next_limits_;
                    next_limits_.reset();
                }
                args.clear();
                request_bytes_ = 0;
                state_ = input[pos] == '*' ? state::multibulk_len : state::inline_line;
                continue;
            case state::multibulk_len:
                result = read_multibulk_len(input, pos, args);
                break;
            case state::bulk_header:
                result = read_bulk_header(input, pos, args);
                break;
            case state::bulk_data:
                result = read_bulk_data(input, pos, args);
                break;
            case state::bulk_crlf:
                result = read_bulk_crlf(input, pos);
                break;
            case state::inline_line:
                result = read_inline(input, pos, args);
                break;
            case state::failed:
                return {decode_status::error, 0};
        }
        if (result) {
            return *result;
        }
    }
}

resp_request_decoder::step_result resp_request_decoder::take_line(std::string_view input,
                                                                  std::size_t& pos,
                                                                  bool inline_form,
                                                                  const char* too_big,
                                                                  std::string_view& content) {
    const std::string_view rest = input.substr(pos);
    const std::string_view terminator = inline_form ? "\n" : "\r\n";
    // Resume the search where the previous feed() stopped, backing up over a possible CR.
    const std::size_t from = std::min(line_scanned_, rest.size());
    const std::size_t end = rest.find(terminator, from == 0 ? 0 : from - 1);
    if (end == std::string_view::npos) {
        line_scanned_ = rest.size();
        // Lower bound of the content length: a trailing CR may belong to the terminator.
        const bool cr_last = !rest.empty() && rest.back() == '\r';
        if (rest.size() - (cr_last ? 1 : 0) > limits_.max_inline_len) {
            return fail(too_big, pos);
        }
        return decode_result{decode_status::need_more, pos};
    }
    line_scanned_ = 0;
    const bool drop_cr = inline_form && end > 0 && rest[end - 1] == '\r';
    content = rest.substr(0, end - (drop_cr ? 1 : 0));
    // Checked on complete lines too, so the outcome does not depend on how bytes were split.
    if (content.size() > limits_.max_inline_len) {
        return fail(too_big, pos);
    }
    pos += end + terminator.size();
    return std::nullopt;
}

// *<count>\r\n
resp_request_decoder::step_result resp_request_decoder::read_multibulk_len(
    std::string_view input, std::size_t& pos, std::vector<std::string>& args) {
    std::string_view line;
    const std::size_t start = pos;
    if (auto r = take_line(input, pos, false, "Protocol error: too big mbulk count string", line)) {
        return r;
    }
    const auto max_args = static_cast<std::int64_t>(
        std::min<std::uint64_t>(limits_.max_args, redis_max_multibulk_len));
    const auto count = detail::parse_int64(line.substr(1));
    if (!count || *count > redis_max_multibulk_len ||
        (*count > max_args && !limits_.unauthenticated)) {
        return fail("Protocol error: invalid multibulk length", start);
    }
    if (*count > max_args) {
        return fail("Protocol error: unauthenticated multibulk length", start);
    }
    if (auto r = count_request_bytes(pos - start, start)) {
        return r;
    }
    if (*count <= 0) {
        state_ = state::idle;  // `*0` and `*-1`: no request, as in Redis
        return std::nullopt;
    }
    args_left_ = *count;
    args.reserve(static_cast<std::size_t>(std::min(*count, max_args_reserved)));
    state_ = state::bulk_header;
    return std::nullopt;
}

// $<length>\r\n
resp_request_decoder::step_result resp_request_decoder::read_bulk_header(
    std::string_view input, std::size_t& pos, std::vector<std::string>& args) {
    std::string_view line;
    const std::size_t start = pos;
    if (auto r = take_line(input, pos, false, "Protocol error: too big bulk count string", line)) {
        return r;
    }
    if (line.empty() || line.front() != '$') {
        // An empty line leaves the CR of its terminator in first place, as in Redis.
        const char got = line.empty() ? '\r' : line.front();
        return fail(std::string("Protocol error: expected '$', got '") + got + "'", start);
    }
    const auto length = detail::parse_int64(line.substr(1));
    if (!length || *length < 0 ||
        (static_cast<std::uint64_t>(*length) > limits_.max_bulk_len && !limits_.unauthenticated)) {
        return fail("Protocol error: invalid bulk length", start);
    }
    if (static_cast<std::uint64_t>(*length) > limits_.max_bulk_len) {
        return fail("Protocol error: unauthenticated bulk length", start);
    }
    // The header, and the declared bytes ahead of their arrival (length <= max_bulk_len, so
    // the sum cannot overflow).
    const std::uint64_t declared =
        (pos - start) + static_cast<std::uint64_t>(*length) + 2 + resp_limits::arg_overhead;
    if (auto r = count_request_bytes(declared, start)) {
        return r;
    }
    bulk_left_ = *length;
    args.emplace_back().reserve(static_cast<std::size_t>(std::min(*length, max_bulk_reserved)));
    state_ = bulk_left_ == 0 ? state::bulk_crlf : state::bulk_data;
    return std::nullopt;
}

// <bytes>: consumed as they arrive, so a large bulk never has to sit whole in the input.
resp_request_decoder::step_result resp_request_decoder::read_bulk_data(
    std::string_view input, std::size_t& pos, std::vector<std::string>& args) {
    if (!detail::take_bulk_bytes(input, pos, bulk_left_, args.back())) {
        return decode_result{decode_status::need_more, pos};
    }
    state_ = state::bulk_crlf;
    return std::nullopt;
}

// \r\n after the bytes of a bulk. A lone CR at the end of the input is left unconsumed.
resp_request_decoder::step_result resp_request_decoder::read_bulk_crlf(std::string_view input,
                                                                       std::size_t& pos) {
    switch (detail::check_bulk_crlf(input.substr(pos))) {
        case detail::crlf_check::need_more:
            return decode_result{decode_status::need_more, pos};
        case detail::crlf_check::bad:
            return fail("Protocol error: expected CRLF after bulk data", pos);
        case detail::crlf_check::ok:
            break;
    }
    pos += 2;
    if (--args_left_ > 0) {
        state_ = state::bulk_header;
        return std::nullopt;
    }
    state_ = state::idle;
    return decode_result{decode_status::request, pos};
}

// A line of space-separated, optionally quoted arguments, ended by LF or CRLF.
resp_request_decoder::step_result resp_request_decoder::read_inline(
    std::string_view input, std::size_t& pos, std::vector<std::string>& args) {
    std::string_view line;
    const std::size_t start = pos;
    if (auto r = take_line(input, pos, true, "Protocol error: too big inline request", line)) {
        return r;
    }
    if (auto r = count_request_bytes(pos - start, start)) {
        return r;
    }
    if (!split_inline(line, args)) {
        return fail("Protocol error: unbalanced quotes in request", start);
    }
    state_ = state::idle;
    return decode_result{decode_status::request, pos};
}

resp_request_decoder::step_result resp_request_decoder::count_request_bytes(std::uint64_t bytes,
                                                                            std::size_t at) {
    request_bytes_ += bytes;
    if (request_bytes_ <= limits_.max_request_bytes) {
        return std::nullopt;
    }
    return fail(limits_.unauthenticated ? "Protocol error: unauthenticated request length"
                                        : "Protocol error: request exceeds query-buffer-limit",
                at);
}

}  // namespace conveyor::protocol

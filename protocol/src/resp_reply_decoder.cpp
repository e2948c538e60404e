#include "conveyor/protocol/resp_reply_decoder.hpp"

#include "resp_scan.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <limits>
#include <system_error>
#include <utility>

namespace conveyor::protocol {

namespace {

// Caps on what a declared length may make us allocate before the bytes arrive.
constexpr std::int64_t max_elements_reserved = 16;
constexpr std::int64_t max_bulk_reserved = std::int64_t{64} * 1024;
// "txt:" before the text of a verbatim string.
constexpr std::size_t verbatim_prefix_len = 4;

// Accepts what RESP3 servers send for doubles: a decimal or exponent form, "inf", "-inf",
// "nan". Rejects text with anything left over, or out of a double's range.
std::optional<double> parse_double(std::string_view text) {
    double value = 0.0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

// Optional '-', then at least one digit.
bool is_big_number(std::string_view text) {
    if (!text.empty() && text.front() == '-') {
        text.remove_prefix(1);
    }
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

resp_type bulk_type(char type_byte) {
    switch (type_byte) {
        case '!':
            return resp_type::bulk_error;
        case '=':
            return resp_type::verbatim;
        default:
            return resp_type::bulk_string;
    }
}

resp_type aggregate_type(char type_byte) {
    switch (type_byte) {
        case '%':
            return resp_type::map;
        case '~':
            return resp_type::set;
        case '>':
            return resp_type::push;
        default:
            return resp_type::array;
    }
}

}  // namespace

resp_reply_decoder::resp_reply_decoder(resp_reply_limits limits) : limits_(limits) {}

bool resp_reply_decoder::in_reply() const noexcept {
    if (state_ == state::failed) {
        return false;
    }
    return state_ != state::header || !stack_.empty() || attributes_pending_ || line_scanned_ > 0;
}

void resp_reply_decoder::reset() {
    state_ = state::header;
    stack_.clear();
    pending_attributes_.clear();
    attributes_pending_ = false;
    bulk_ = {};
    bulk_left_ = 0;
    complete_.reset();
    line_scanned_ = 0;
    error_.clear();
}

reply_result resp_reply_decoder::fail(std::string message, std::size_t consumed) {
    error_ = std::move(message);
    state_ = state::failed;
    return {reply_status::error, consumed};
}

reply_result resp_reply_decoder::feed(std::string_view input, resp_value& reply) {
    std::size_t pos = 0;
    while (true) {
        step_result result;
        switch (state_) {
            case state::header:
                if (pos == input.size()) {
                    return {reply_status::need_more, pos};
                }
                result = read_header(input, pos);
                break;
            case state::bulk_data:
                result = read_bulk_data(input, pos);
                break;
            case state::bulk_crlf:
                result = read_bulk_crlf(input, pos);
                break;
            case state::failed:
                return {reply_status::error, 0};
        }
        if (result) {
            return *result;
        }
        if (complete_) {
            reply = std::move(*complete_);
            complete_.reset();
            return {reply_status::reply, pos};
        }
    }
}

resp_value resp_reply_decoder::start_value(resp_type type) {
    resp_value value;
    value.type = type;
    value.attributes = std::move(pending_attributes_);
    pending_attributes_.clear();
    attributes_pending_ = false;
    return value;
}

void resp_reply_decoder::finish(resp_value value) {
    while (!stack_.empty()) {
        frame& parent = stack_.back();
        parent.value.elements.push_back(std::move(value));
        if (--parent.remaining > 0) {
            return;
        }
        value = std::move(parent.value);
        const bool attribute = parent.attribute;
        stack_.pop_back();
        if (attribute) {
            // Consecutive attributes all annotate the value that follows them: an attribute
            // holds those before it in its own `attributes` (see start_aggregate).
            pending_attributes_ = std::move(value.attributes);
            std::move(value.elements.begin(), value.elements.end(),
                      std::back_inserter(pending_attributes_));
            attributes_pending_ = true;
            return;
        }
    }
    complete_ = std::move(value);
}

// <type byte><body>\r\n: a whole line value, or the header of a bulk or an aggregate.
resp_reply_decoder::step_result resp_reply_decoder::read_header(std::string_view input,
                                                                std::size_t& pos) {
    const std::string_view rest = input.substr(pos);
    // Resume the search where the previous feed() stopped, backing up over a possible CR.
    const std::size_t from = std::min(line_scanned_, rest.size());
    const std::size_t end = rest.find("\r\n", from == 0 ? 0 : from - 1);
    if (end == std::string_view::npos) {
        line_scanned_ = rest.size();
        const bool cr_last = rest.back() == '\r';
        if (rest.size() - (cr_last ? 1 : 0) > limits_.max_line_len) {
            return fail("Protocol error: reply line too long", pos);
        }
        return reply_result{reply_status::need_more, pos};
    }
    line_scanned_ = 0;
    if (end > limits_.max_line_len) {
        return fail("Protocol error: reply line too long", pos);
    }
    const std::size_t start = pos;
    pos += end + 2;
    if (end == 0) {
        return fail("Protocol error: empty reply line", start);
    }
    const char type_byte = rest[0];
    const std::string_view body = rest.substr(1, end - 1);
    switch (type_byte) {
        case '$':
        case '!':
        case '=':
            return start_bulk(type_byte, body, start);
        case '*':
        case '%':
        case '~':
        case '>':
        case '|':
            return start_aggregate(type_byte, body, start);
        default:
            return read_line_value(type_byte, body, start);
    }
}

resp_reply_decoder::step_result resp_reply_decoder::read_line_value(char type_byte,
                                                                    std::string_view body,
                                                                    std::size_t start) {
    resp_value value;
    switch (type_byte) {
        case '+':
        case '-':
            value = start_value(type_byte == '+' ? resp_type::simple_string : resp_type::error);
            value.text = body;
            break;
        case ':':
            if (const auto n = detail::parse_int64(body)) {
                value = start_value(resp_type::integer);
                value.integer = *n;
                break;
            }
            return fail("Protocol error: invalid integer", start);
        case '_':
            if (!body.empty()) {
                return fail("Protocol error: invalid null", start);
            }
            value = start_value(resp_type::null);
            break;
        case '#':
            if (body != "t" && body != "f") {
                return fail("Protocol error: invalid boolean", start);
            }
            value = start_value(resp_type::boolean);
            value.integer = body == "t" ? 1 : 0;
            break;
        case ',':
            if (const auto d = parse_double(body)) {
                value = start_value(resp_type::double_number);
                value.number = *d;
                value.text = body;
                break;
            }
            return fail("Protocol error: invalid double", start);
        case '(':
            if (!is_big_number(body)) {
                return fail("Protocol error: invalid big number", start);
            }
            value = start_value(resp_type::big_number);
            value.text = body;
            break;
        default:
            return fail(std::string("Protocol error: unexpected reply type '") + type_byte + "'",
                        start);
    }
    finish(std::move(value));
    return std::nullopt;
}

// $<len>, !<len>, =<len>; `$-1` is RESP2's null.
resp_reply_decoder::step_result resp_reply_decoder::start_bulk(char type_byte,
                                                               std::string_view body,
                                                               std::size_t start) {
    const auto length = detail::parse_int64(body);
    if (length && *length == -1 && type_byte == '$') {
        finish(start_value(resp_type::null));
        return std::nullopt;
    }
    if (!length || *length < 0) {
        return fail("Protocol error: invalid bulk length", start);
    }
    if (static_cast<std::uint64_t>(*length) > limits_.max_bulk_len) {
        return fail("Protocol error: bulk string too long", start);
    }
    if (type_byte == '=' && *length < static_cast<std::int64_t>(verbatim_prefix_len)) {
        return fail("Protocol error: invalid verbatim string", start);
    }
    bulk_ = start_value(bulk_type(type_byte));
    bulk_.text.reserve(static_cast<std::size_t>(std::min(*length, max_bulk_reserved)));
    bulk_left_ = *length;
    state_ = bulk_left_ == 0 ? state::bulk_crlf : state::bulk_data;
    return std::nullopt;
}

// *<n>, %<n>, ~<n>, ><n>, |<n>; `*-1` is RESP2's null array.
resp_reply_decoder::step_result resp_reply_decoder::start_aggregate(char type_byte,
                                                                    std::string_view body,
                                                                    std::size_t start) {
    const auto count = detail::parse_int64(body);
    if (count && *count == -1 && type_byte == '*') {
        finish(start_value(resp_type::null));
        return std::nullopt;
    }
    if (!count || *count < 0) {
        return fail("Protocol error: invalid aggregate length", start);
    }
    const bool pairs = type_byte == '%' || type_byte == '|';
    if (static_cast<std::uint64_t>(*count) > limits_.max_aggregate_len ||
        (pairs && *count > std::numeric_limits<std::int64_t>::max() / 2)) {
        return fail("Protocol error: aggregate too long", start);
    }
    if (stack_.size() >= limits_.max_depth) {
        return fail("Protocol error: reply nested too deeply", start);
    }
    frame aggregate;
    aggregate.attribute = type_byte == '|';
    aggregate.remaining = pairs ? *count * 2 : *count;
    if (aggregate.attribute && aggregate.remaining == 0) {
        attributes_pending_ = true;
        return std::nullopt;
    }
    // Attributes pending before an attribute annotate the value after it; the attribute
    // holds them meanwhile, so that they do not attach to its first key.
    aggregate.value = start_value(aggregate.attribute ? resp_type::map : aggregate_type(type_byte));
    if (aggregate.remaining == 0) {
        finish(std::move(aggregate.value));
        return std::nullopt;
    }
    aggregate.value.elements.reserve(
        static_cast<std::size_t>(std::min(aggregate.remaining, max_elements_reserved)));
    stack_.push_back(std::move(aggregate));
    return std::nullopt;
}

// The bytes of a bulk, consumed as they arrive.
resp_reply_decoder::step_result resp_reply_decoder::read_bulk_data(std::string_view input,
                                                                   std::size_t& pos) {
    if (!detail::take_bulk_bytes(input, pos, bulk_left_, bulk_.text)) {
        return reply_result{reply_status::need_more, pos};
    }
    state_ = state::bulk_crlf;
    return std::nullopt;
}

// \r\n after a bulk; a lone CR at the end of the input is left unconsumed.
resp_reply_decoder::step_result resp_reply_decoder::read_bulk_crlf(std::string_view input,
                                                                   std::size_t& pos) {
    switch (detail::check_bulk_crlf(input.substr(pos))) {
        case detail::crlf_check::need_more:
            return reply_result{reply_status::need_more, pos};
        case detail::crlf_check::bad:
            return fail("Protocol error: expected CRLF after bulk data", pos);
        case detail::crlf_check::ok:
            break;
    }
    if (bulk_.type == resp_type::verbatim) {
        if (bulk_.text[verbatim_prefix_len - 1] != ':') {
            return fail("Protocol error: invalid verbatim string", pos);
        }
        bulk_.format = bulk_.text.substr(0, verbatim_prefix_len - 1);
        bulk_.text.erase(0, verbatim_prefix_len);
    }
    pos += 2;
    state_ = state::header;
    finish(std::move(bulk_));
    bulk_ = {};
    return std::nullopt;
}

}  // namespace conveyor::protocol

#include "conveyor/protocol/resp_writer.hpp"

#include <charconv>
#include <cmath>

namespace conveyor::protocol {

namespace {

// Longest to_chars output: 20 characters for INT64_MIN, 24 for the shortest round-trip form of
// a double ("-2.2250738585072014e-308").
constexpr std::size_t number_buffer_len = 32;

void append_crlf(std::string& out) {
    out.append("\r\n", 2);
}

// Appends `text` with CR and LF turned into spaces, so a line reply cannot break the framing.
void append_line_safe(std::string& out, std::string_view text) {
    const std::size_t start = out.size();
    out.append(text);
    for (std::size_t i = start; i < out.size(); ++i) {
        if (out[i] == '\r' || out[i] == '\n') {
            out[i] = ' ';
        }
    }
}

template <typename Integer>
void append_number(std::string& out, Integer n) {
    char buffer[number_buffer_len];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, n);
    out.append(buffer, result.ptr);
}

// `<prefix><n>\r\n`: the header of aggregates and bulks, and integers.
template <typename Integer>
void append_header(std::string& out, char prefix, Integer n) {
    out.push_back(prefix);
    append_number(out, n);
    append_crlf(out);
}

// Shortest text that reads back as the same double; "inf", "-inf" and "nan" as RESP3 spells
// them (to_chars would write "-nan" for a NaN with its sign bit set).
std::string_view format_double(double d, char (&buffer)[number_buffer_len]) {
    if (std::isnan(d)) {
        return "nan";
    }
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, d);
    return {buffer, static_cast<std::size_t>(result.ptr - buffer)};
}

}  // namespace

void resp_writer::simple(std::string_view text) {
    out_->push_back('+');
    append_line_safe(*out_, text);
    append_crlf(*out_);
}

void resp_writer::error(std::string_view text) {
    out_->push_back('-');
    append_line_safe(*out_, text);
    append_crlf(*out_);
}

void resp_writer::integer(std::int64_t n) {
    append_header(*out_, ':', n);
}

void resp_writer::bulk(std::string_view bytes) {
    append_header(*out_, '$', bytes.size());
    out_->append(bytes);
    append_crlf(*out_);
}

void resp_writer::null() {
    out_->append(version_ == resp_version::resp3 ? "_\r\n" : "$-1\r\n");
}

void resp_writer::null_array() {
    out_->append(version_ == resp_version::resp3 ? "_\r\n" : "*-1\r\n");
}

void resp_writer::array_header(std::size_t n) {
    append_header(*out_, '*', n);
}

void resp_writer::map_header(std::size_t pairs) {
    if (version_ == resp_version::resp3) {
        append_header(*out_, '%', pairs);
    } else {
        append_header(*out_, '*', pairs * 2);
    }
}

void resp_writer::set_header(std::size_t n) {
    append_header(*out_, version_ == resp_version::resp3 ? '~' : '*', n);
}

void resp_writer::boolean(bool b) {
    if (version_ == resp_version::resp3) {
        out_->append(b ? "#t\r\n" : "#f\r\n");
    } else {
        out_->append(b ? ":1\r\n" : ":0\r\n");
    }
}

void resp_writer::dbl(double d) {
    char buffer[number_buffer_len];
    const std::string_view text = format_double(d, buffer);
    if (version_ == resp_version::resp3) {
        out_->push_back(',');
        out_->append(text);
        append_crlf(*out_);
    } else {
        bulk(text);
    }
}

void resp_writer::verbatim(std::string_view text) {
    if (version_ != resp_version::resp3) {
        bulk(text);
        return;
    }
    constexpr std::string_view format = "txt:";
    append_header(*out_, '=', text.size() + format.size());
    out_->append(format);
    out_->append(text);
    append_crlf(*out_);
}

}  // namespace conveyor::protocol
